"""Use cases of the generateContent surface: generate (whole or streamed), count tokens, embed.

Stateless: no interaction is stored. Admission, routing and accounting are the stateless
calls' (service/stateless.py: the same model registry, gateway, per-key policy, ledger and
metrics as interactions; the call's id is the answer's `responseId`). `gemini` targets get the
client's body as sent (`Turn.native`) and their answer comes back unchanged; other targets get
the request translated (schema/gemini/turn.py) and their events are written as
GenerateContentResponse bodies (schema/gemini/answer.py).

A request naming a `cachedContent` (service/caches.py: the caller's tenant's, unexpired, made
for the same served model; the request sets no `systemInstruction`, `tools` or `toolConfig`
of its own, as Google requires) gets the cached content before its own: translated ahead of
its contents for other targets (its words counted as cached by echo), and, for `gemini`
targets, as the name of the target's upstream copy, or inline when it has none.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument
from propylon.providers.base import (
    Embeddings,
    FunctionCall,
    NativeChunk,
    NativeRequest,
    ProviderEvent,
    Turn,
    UpstreamError,
)
from propylon.providers.echo import EchoProvider, input_words
from propylon.providers.gemini import GeminiProvider
from propylon.runner.output import check_arguments
from propylon.schema.gemini.answer import ResponseBuilder, error_chunk
from propylon.schema.gemini.request import GenerateContentRequest
from propylon.schema.gemini.turn import Translated, translate
from propylon.service.caches import CacheService, cached_turn, native_cache
from propylon.service.stateless import Call, StatelessCalls, upstream_failure
from propylon.store.caches import CacheRecord

__all__ = ["GenerateService", "Generation"]

# Propylon's own fields of a generateContent body, never forwarded: `labels`, and the cached
# content, which each `gemini` target gets as its own copy's name (or inline)
_PROPYLONS = frozenset({"labels", "cachedContent", "cached_content"})
_INNER = ("generateContentRequest", "generate_content_request")


@dataclass(slots=True)
class Generation:
    """A generateContent call under way: its stateless call, the builder of its response
    bodies, and the declarations its calls are checked against (`VALIDATED` mode)."""

    call: Call
    builder: ResponseBuilder
    validated: bool = False
    tools: list[dict[str, Any]] | None = None


class GenerateService:
    """generateContent, countTokens and embeddings over the stateless calls."""

    def __init__(self, calls: StatelessCalls, caches: CacheService | None = None) -> None:
        self.calls = calls
        self.caches = caches

    async def generate(
        self,
        model: str,
        request: GenerateContentRequest,
        body: dict[str, Any],
        caller: Caller,
        *,
        stream: bool,
    ) -> Generation:
        """Admit and start one generateContent call of `model` for `caller`. `body`: the
        request as sent (forwarded to `gemini` targets less `labels`, which are Propylon's;
        a key's token ceiling caps its `maxOutputTokens` there, see StatelessCalls.answer).
        Raises InvalidArgument (naming the field), NotFound, PermissionDenied,
        ResourceExhausted or Unavailable before any output."""
        cache = await self._cache(model, request, caller)
        served = self.calls.resolve(model)
        providers = {target.settings.provider for target in served.targets}
        translated = self._translate(request, cache) if providers - {"gemini"} else None
        turn = translated.turn if translated is not None else Turn(history=[])
        turn.streamed = stream
        if "gemini" in providers:
            forwarded = {k: v for k, v in body.items() if k not in _PROPYLONS}
            cached = native_cache(cache) if cache is not None else None
            turn.native = NativeRequest("generateContent", forwarded, stream, cached)
        call = await self.calls.answer(caller, model, turn, request.labels or {}, prefix="gc")
        return Generation(
            call,
            ResponseBuilder(model.removeprefix("models/"), call.id),
            validated=translated is not None and translated.validated,
            tools=turn.tools,
        )

    async def _cache(
        self, model: str, request: GenerateContentRequest, caller: Caller
    ) -> CacheRecord | None:
        """The cached content `request` names, if any, checked for use with `model`. Raises
        NotFound (unknown, expired, another tenant's) or InvalidArgument."""
        if request.cached_content is None:
            return None
        if self.caches is None:
            raise InvalidArgument("`cachedContent`: this server keeps no cached contents")
        cache = await self.caches.find(request.cached_content, caller)
        self.caches.check_use(cache, model, request)
        return cache

    @staticmethod
    def _translate(request: GenerateContentRequest, cache: CacheRecord | None) -> Translated:
        """The Turn for targets that are not `gemini`: `cache`'s content first, if any."""
        if cache is None:
            return translate(request)
        own = request.model_dump(by_alias=True, exclude_none=True, exclude={"cached_content"})
        turn, validated = cached_turn(cache, own)
        return Translated(turn, validated)

    async def whole(self, generation: Generation) -> dict[str, Any]:
        """The whole answer as one GenerateContentResponse (a `gemini` target's own,
        unchanged). Raises the client's error for an upstream failure."""
        native: dict[str, Any] | None = None
        try:
            async for event in generation.call.events:
                if isinstance(event, NativeChunk):
                    native = event.body
                else:
                    _validate(generation, event)
                    generation.builder.chunk(event)
        except UpstreamError as exc:
            raise upstream_failure(exc) from None
        finally:
            await generation.call.close()  # accounted now, however it ended
        return native if native is not None else generation.builder.merged()

    async def chunks(self, generation: Generation) -> AsyncGenerator[dict[str, Any]]:
        """The answer as response chunks (a `gemini` target's own, unchanged). A failure
        once chunks went out ends them with `{"error": {...}}`: the status line is sent."""
        native = False
        events = generation.call.events
        try:
            async for event in events:
                if isinstance(event, NativeChunk):
                    native = True
                    yield event.body
                    continue
                _validate(generation, event)
                chunk = generation.builder.chunk(event)
                if chunk is not None:
                    yield chunk
            if not native:
                yield generation.builder.last()
        except UpstreamError as exc:
            failure = upstream_failure(exc)
            yield error_chunk(failure.http_status, failure.status, failure.message)
        finally:
            await generation.call.close()  # a client that went away stops the upstream call now

    async def count_tokens(
        self, model: str, request: GenerateContentRequest, body: dict[str, Any], caller: Caller
    ) -> int:
        """The input tokens of `request` (`body` as sent), counted by the model's first
        target: Google's `countTokens` for a `gemini` target, echo's word count for `echo`.
        Raises NotFound, PermissionDenied, or InvalidArgument for a model whose first target
        cannot count (or a request it cannot take)."""
        cache = await self._cache(model, request, caller)
        served = self.calls.resolve(model)
        self.calls.quotas.allows(caller, model)
        target = served.targets[0]
        if isinstance(target.provider, GeminiProvider):
            if cache is not None:  # named inside `generateContentRequest`
                inner = {k: v for k, v in _inner(body).items() if k not in _PROPYLONS}
                inner = native_cache(cache).body_for(target.name, inner)
                body = {k: v for k, v in body.items() if k not in _INNER} | {
                    "generateContentRequest": inner
                }
            try:
                return await target.provider.count_tokens(body)
            except UpstreamError as exc:
                exc.target = target.name
                raise upstream_failure(exc) from None
        if isinstance(target.provider, EchoProvider):
            return input_words(self._translate(request, cache).turn)
        raise InvalidArgument(
            f"`model`: countTokens is not offered for model `{model}` (its target "
            f"`{target.name}` has no tokenizer Propylon can call)"
        )

    async def embed(
        self, model: str, texts: list[str], dimensions: int | None, caller: Caller
    ) -> Embeddings:
        """One vector per text, by `model`'s targets through the gateway. Raises NotFound,
        PermissionDenied, ResourceExhausted, InvalidArgument (a model that does not embed),
        or the client's error for an upstream failure."""
        made = await self.calls.embed(caller, model, texts, dimensions, {})
        if len(made.vectors) != len(texts):
            raise InvalidArgument(
                f"model `{model}` answered {len(made.vectors)} embeddings for {len(texts)} texts"
            )
        return made


def _inner(body: dict[str, Any]) -> dict[str, Any]:
    """A countTokens body's `generateContentRequest`, in either spelling."""
    inner: dict[str, Any] = next((body[k] for k in _INNER if isinstance(body.get(k), dict)), {})
    return dict(inner)


def _validate(generation: Generation, event: ProviderEvent) -> None:
    """`VALIDATED` mode: a call's arguments must match its declaration (else the answer
    fails like an upstream's)."""
    if generation.validated and isinstance(event, FunctionCall):
        try:
            check_arguments(event, generation.tools or [])
        except ValueError as exc:
            raise UpstreamError(str(exc)) from None
