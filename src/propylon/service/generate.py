"""Use cases of the generateContent surface: generate (whole or streamed), count tokens, embed.

Stateless: no interaction is stored. Each call goes through the same model registry and
gateway as an interaction (one retry loop, fallback, breaker, one log line per upstream call,
cost from the target's prices), and the same per-key policy: allowed models, rpm / tpm
(service/quotas.py) and spend budgets (service/ledger.py: an entry per call, under the
call's `responseId`). `gemini` targets get the client's body as sent (`Turn.native`) and
their answer comes back unchanged; other targets get the request translated
(schema/gemini/turn.py) and their events are written as GenerateContentResponse bodies.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from propylon.domain.caller import Caller
from propylon.domain.clock import now
from propylon.domain.usage import Usage
from propylon.errors import (
    InvalidArgument,
    NotFound,
    PropylonError,
    ResourceExhausted,
    Unavailable,
)
from propylon.gateway.registry import ModelRegistry, ServedModel
from propylon.gateway.router import CallRecord
from propylon.observability import Metrics
from propylon.providers.base import (
    Embeddings,
    EmbedRequest,
    FunctionCall,
    NativeChunk,
    NativeRequest,
    ProviderEvent,
    Turn,
    UpstreamError,
    UsageReport,
)
from propylon.providers.echo import EchoProvider, input_words
from propylon.providers.gemini import GeminiProvider
from propylon.runner.output import check_arguments
from propylon.schema.gemini.answer import ResponseBuilder
from propylon.schema.gemini.request import GenerateContentRequest
from propylon.schema.gemini.turn import translate
from propylon.service.ledger import Ledger
from propylon.service.quotas import Quotas
from propylon.store.base import InteractionRecord

__all__ = ["Call", "GenerateService", "upstream_failure"]


def upstream_failure(exc: UpstreamError) -> PropylonError:
    """The client's error for an upstream that failed every attempt: the upstream's own
    message (Google's `error.message` when it sent one) with a status of its kind."""
    text = exc.message
    if exc.body:
        text = exc.body
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
            text = str(orjson.loads(exc.body)["error"]["message"])
    where = f"upstream `{exc.target}`" if exc.target else "the upstream"
    if exc.status in (400, 422):
        return InvalidArgument(text)
    if exc.status == 404:
        return NotFound(f"{where}: {text}")
    if exc.status == 429:
        return ResourceExhausted(f"{where}: {text}", exc.retry_after or 1.0)
    return Unavailable(f"{where} failed: {text}")


@dataclass(slots=True)
class Call:
    """One admitted call: its routed event stream, and `close` to settle it (idempotent)."""

    events: AsyncIterator[ProviderEvent]
    close: Callable[[], Any]
    builder: ResponseBuilder
    validated: bool = False
    tools: list[dict[str, Any]] | None = None


class GenerateService:
    """generateContent, countTokens and embeddings over the model registry (`models()`: the
    current one, which a SIGHUP may replace), the quotas and ledger Interactions use too."""

    def __init__(
        self,
        models: Callable[[], ModelRegistry],
        quotas: Quotas,
        ledger: Ledger,
        metrics: Metrics | None = None,
    ) -> None:
        self.models = models
        self.quotas = quotas
        self.ledger = ledger
        self.metrics = metrics

    async def generate(
        self,
        model: str,
        request: GenerateContentRequest,
        body: dict[str, Any],
        caller: Caller,
        *,
        stream: bool,
    ) -> Call:
        """Admit and start one generateContent call of `model` for `caller`. `body`: the
        request as sent (forwarded to `gemini` targets less `labels`). Raises InvalidArgument
        (naming the field), NotFound, PermissionDenied or ResourceExhausted before any
        upstream call; the returned events raise UpstreamError."""
        if request.cached_content is not None:
            raise InvalidArgument(
                "`cachedContent`: Propylon does not serve cached contents yet; send the "
                "contents in the request"
            )
        served = self.models().resolve(model)
        await self.quotas.admit(caller, model)
        providers = {target.settings.provider for target in served.targets}
        translated = translate(request) if providers - {"gemini"} else None
        turn = translated.turn if translated is not None else Turn(history=[])
        if "gemini" in providers:
            forwarded = {k: v for k, v in body.items() if k != "labels"}
            turn.native = NativeRequest("generateContent", forwarded, stream)
        served.check(turn)
        response_id = "gc_" + secrets.token_hex(12)
        builder = ResponseBuilder(model.removeprefix("models/"), response_id)
        events, close = await self._start(
            served, model, turn, caller, response_id, request.labels or {}
        )
        return Call(
            events,
            close,
            builder,
            validated=translated is not None and translated.validated,
            tools=turn.tools,
        )

    async def _start(
        self,
        served: ServedModel,
        model: str,
        turn: Turn,
        caller: Caller,
        call_id: str,
        labels: dict[str, str],
    ) -> tuple[AsyncIterator[ProviderEvent], Callable[[], Any]]:
        """Reserve the call's place (the embedded model's queue) and budget, and bind it to
        the gateway. Returns its events and the coroutine function that settles it."""
        ticket = served.admit()
        timestamp = now()
        record = InteractionRecord(
            id=call_id,
            status="in_progress",
            created=timestamp,
            updated=timestamp,
            request={"model": model},
            input=None,
            input_steps=[],
            tenant=caller.tenant,
            api_key_id=caller.key_id,
        )
        try:
            await self.ledger.reserve(record, caller, served)
        except BaseException:
            ticket.release()
            raise
        usage = Usage()

        def on_done(done: CallRecord) -> None:
            usage.add(done.usage)
            record.add_cost(done.cost_usd())
            if self.metrics is not None:
                self.metrics.upstream_call(done, caller.tenant)

        settled = False

        async def close() -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            ticket.release()
            record.usage = usage.to_wire()
            await self.ledger.settle(record)
            self.quotas.count_tokens(caller, usage.total_tokens)
            if self.metrics is not None:
                self.metrics.usage_counted(model, caller.tenant, usage, record.cost_usd)

        provider = served.bind(call_id, model.removeprefix("models/"), labels, on_done)
        return provider.stream(turn), close

    async def whole(self, call: Call) -> dict[str, Any]:
        """The whole answer of `call` as one GenerateContentResponse (a `gemini` target's
        own, unchanged). Raises the client's error for an upstream failure."""
        native: dict[str, Any] | None = None
        try:
            async for event in call.events:
                if isinstance(event, NativeChunk):
                    native = event.body
                else:
                    call.builder.chunk(event)
                    self._validate(call, event)
        except UpstreamError as exc:
            raise upstream_failure(exc) from None
        finally:
            await call.close()
        return native if native is not None else call.builder.merged()

    async def chunks(self, call: Call) -> AsyncGenerator[dict[str, Any]]:
        """The answer of `call` as response chunks (a `gemini` target's own, unchanged). An
        upstream failure before the first chunk raises the client's error; one after it
        ends the chunks with `{"error": {...}}` (the status line is sent by then)."""
        started = False
        native = False
        try:
            async for event in call.events:
                if isinstance(event, NativeChunk):
                    native, started = True, True
                    yield event.body
                    continue
                chunk = call.builder.chunk(event)
                self._validate(call, event)
                if chunk is not None:
                    started = True
                    yield chunk
            if not native:
                yield call.builder.last()
        except UpstreamError as exc:
            if not started:
                raise upstream_failure(exc) from None
            failure = upstream_failure(exc)
            yield {
                "error": {
                    "code": failure.http_status,
                    "message": failure.message,
                    "status": failure.status,
                }
            }
        finally:
            closing = getattr(call.events, "aclose", None)
            if closing is not None:
                await closing()  # a client that went away stops the upstream call now
            await call.close()

    @staticmethod
    def _validate(call: Call, event: ProviderEvent) -> None:
        """`VALIDATED` mode: a call's arguments must match its declaration."""
        if call.validated and isinstance(event, FunctionCall):
            try:
                check_arguments(event, call.tools or [])
            except ValueError as exc:
                raise UpstreamError(str(exc)) from None

    async def count_tokens(
        self, model: str, request: GenerateContentRequest, body: dict[str, Any], caller: Caller
    ) -> int:
        """The input tokens of `request` (`body` as sent), counted by the model's first
        target: Google's `countTokens` for a `gemini` target, echo's word count for `echo`.
        Raises NotFound, PermissionDenied, or InvalidArgument for a model whose first target
        cannot count (or a request it cannot take)."""
        served = self.models().resolve(model)
        self.quotas.allows(caller, model)
        target = served.targets[0]
        if isinstance(target.provider, GeminiProvider):
            try:
                return await target.provider.count_tokens(body)
            except UpstreamError as exc:
                exc.target = target.name
                raise upstream_failure(exc) from None
        if isinstance(target.provider, EchoProvider):
            return input_words(translate(request).turn)
        raise InvalidArgument(
            f"`model`: countTokens is not offered for model `{model}` (its target "
            f"`{target.name}` has no tokenizer Propylon can call)"
        )

    async def embed(
        self, model: str, request: EmbedRequest, caller: Caller, labels: dict[str, str]
    ) -> tuple[list[list[float]], Usage]:
        """One vector per text of `request`, by `model`'s targets through the gateway.
        Raises NotFound, PermissionDenied, ResourceExhausted, InvalidArgument (a model that
        does not embed), or the client's error for an upstream failure."""
        served = self.models().resolve(model)
        await self.quotas.admit(caller, model)
        turn = Turn(history=[], embed=request)
        served.check(turn)
        events, close = await self._start(
            served, model, turn, caller, "emb_" + secrets.token_hex(12), labels
        )
        vectors: list[list[float]] = []
        usage = Usage()
        try:
            async for event in events:
                if isinstance(event, Embeddings):
                    vectors = event.vectors
                elif isinstance(event, UsageReport):
                    usage = event.usage
        except UpstreamError as exc:
            raise upstream_failure(exc) from None
        finally:
            await close()
        if len(vectors) != len(request.texts):
            raise Unavailable(
                f"the model answered {len(vectors)} embeddings for {len(request.texts)} texts"
            )
        return vectors, usage
