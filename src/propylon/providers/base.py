"""The provider interface: a turn in, a stream of provider events out. Providers keep no state.

A provider translates between our steps (wire-shaped dicts, reference §4.3) and its upstream.
`check` runs before anything is stored, so a turn a provider cannot honour answers 400 and
changes nothing; `stream` runs the turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from propylon.domain.usage import Usage

__all__ = [
    "Admission",
    "Citations",
    "Embedder",
    "Embeddings",
    "Finish",
    "FunctionCall",
    "MediaDelta",
    "NativeCache",
    "NativeChunk",
    "NativeRequest",
    "Provider",
    "ProviderEvent",
    "ServerStep",
    "TextDelta",
    "ThoughtDelta",
    "Ticket",
    "ToolChoice",
    "Turn",
    "UpstreamError",
    "UsageReport",
    "step_text",
]


@dataclass(slots=True)
class NativeRequest:
    """A surface's own request body, for an upstream that speaks that surface's format (a
    pass-through: no lossy round trip through steps). `api`: the surface's name for the call
    (`generateContent`); `body`: the request as the client sent it, less what Propylon handles
    itself; `stream`: the client asked for a stream. A provider that does not speak `api`
    answers the Turn's translated fields instead and ignores this."""

    api: str
    body: dict[str, Any]
    stream: bool = False
    cached: NativeCache | None = None


@dataclass(slots=True)
class NativeCache:
    """The cached content a NativeRequest names (generateContent's `cachedContent`), which
    its `body` no longer does. `upstream`: per target label, the name of that target's copy
    of it (`cachedContents/...`); `inline`: its fields (`contents`, `systemInstruction`,
    `tools`, `toolConfig`, camelCase), sent before the request's by a target with no copy."""

    upstream: dict[str, str]
    inline: dict[str, Any]

    def body_for(self, label: str, body: dict[str, Any]) -> dict[str, Any]:
        """The request `body` for the target `label`: naming its copy, or with the cached
        fields inline (the request itself sets none but `contents`)."""
        name = self.upstream.get(label)
        if name is not None:
            return {**body, "cachedContent": name}
        merged = {**body, **{k: v for k, v in self.inline.items() if k != "contents"}}
        merged["contents"] = [*self.inline.get("contents", []), *body.get("contents", [])]
        return merged


@dataclass(slots=True)
class Turn:
    """What a provider is asked to answer.

    history: every step of the conversation, oldest first, ending with this turn's input.
    generation_config: the request's `generation_config` with unset fields left out.
    response_modalities: what the answer may hold (`text`, `image`, `audio`); empty: text.
    safety_settings: the request's `safety_settings` (`{type, threshold, method?}`).
    continuation: the text of an answer cut short (`requires_continuation`) that this turn
    goes on with: the provider answers the history without it and sends only what follows.
    upstream_continuation: the upstream's own token for that (Gemini's `continuationToken`).
    chat_completions_body: the Chat Completions request a client sent (OpenAI's surface), for
    providers whose upstream speaks it: they send it as it came, with its fields intact,
    instead of the translated history (which every other provider answers).
    native: a surface's own request body (generateContent's), likewise, for providers that
    speak it (`gemini`): they answer with its chunks unchanged (`NativeChunk`).
    cached_steps: the first `cached_steps` steps of `history` came from a cached content
    (`cachedContents`), with the system instruction when `cached_instruction`: a provider
    that counts its own tokens (echo) reports those as cached input.
    streamed: someone reads the answer as it comes (a streamed create, a background run, a
    ceiling that may cut it). False: only the whole answer matters, so a network provider
    may ask its upstream for it in one JSON body instead of a stream (cheaper to read); its
    events are the same either way.
    """

    history: list[dict[str, Any]]
    system_instruction: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    generation_config: dict[str, Any] = field(default_factory=dict)
    json_schema: dict[str, Any] | None = None
    response_modalities: list[str] = field(default_factory=list)
    safety_settings: list[dict[str, Any]] = field(default_factory=list)
    continuation: str | None = None
    upstream_continuation: str | None = None
    chat_completions_body: dict[str, Any] | None = None
    native: NativeRequest | None = None
    cached_steps: int = 0
    cached_instruction: bool = False
    streamed: bool = True

    def functions(self) -> list[dict[str, Any]]:
        """The function declarations the model may call, as allowed by `tool_choice`."""
        choice = self.tool_choice()
        if choice.mode == "none":
            return []
        return [
            tool
            for tool in self.tools
            if tool.get("type") == "function"
            and (choice.allowed is None or tool["name"] in choice.allowed)
        ]

    def tool_choice(self) -> ToolChoice:
        """`generation_config.tool_choice` normalised (reference §3.6); default `auto`."""
        value = self.generation_config.get("tool_choice")
        if value is None:
            return ToolChoice()
        if isinstance(value, str):
            return ToolChoice(mode=value)
        # The schema admits only `{allowed_tools: {mode?, tools?}}`; anything else is `auto`.
        allowed = value.get("allowed_tools") if isinstance(value, dict) else None
        if not isinstance(allowed, dict):
            return ToolChoice()
        tools = allowed.get("tools")
        return ToolChoice(
            mode=str(allowed.get("mode") or "auto"),
            allowed=[str(t) for t in tools] if isinstance(tools, list) else None,
        )


@dataclass(slots=True)
class ToolChoice:
    """How the model may use tools: `auto`, `any` (must call), `none`, or `validated` (must
    call, arguments checked against the schema); `allowed`: the tool names it may call."""

    mode: str = "auto"
    allowed: list[str] | None = None

    @property
    def forced(self) -> bool:
        return self.mode in ("any", "validated")


@dataclass(slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(slots=True)
class ThoughtDelta:
    """A piece of a thought summary, or the thought's signature."""

    summary: str | None = None
    signature: str | None = None


@dataclass(slots=True)
class FunctionCall:
    """The model calls a client-side function; `arguments` is a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class MediaDelta:
    """A piece of media in the answer (an image, audio): base64 `data` or a `uri`.
    `sample_rate`: for raw audio (`audio/l16`), in Hz."""

    type: Literal["image", "audio", "video", "document"]
    mime_type: str | None = None
    data: str | None = None
    uri: str | None = None
    sample_rate: int | None = None


@dataclass(slots=True)
class ServerStep:
    """A whole step of a tool the upstream ran itself (`google_search_call`,
    `code_execution_result`, ...), in its wire shape (reference §4.3)."""

    step: dict[str, Any]


@dataclass(slots=True)
class Citations:
    """Annotations (`url_citation`, ...) of the answer's text so far."""

    annotations: list[dict[str, Any]]


@dataclass(slots=True)
class NativeChunk:
    """One chunk (or the whole answer) of an upstream's answer to a `Turn.native` request, in
    that surface's own format, unchanged. The provider also yields the usage it reports."""

    body: dict[str, Any]


@dataclass(slots=True)
class Embeddings:
    """The embedding of each input text, in order, and the tokens the input counted as
    (`usage.input_tokens`)."""

    vectors: list[list[float]]
    usage: Usage


@dataclass(slots=True)
class UsageReport:
    """Token counts for the turn so far; the last report wins."""

    usage: Usage


@dataclass(slots=True)
class Finish:
    """Why generation ended: `stop` (natural end or stop sequence), `max_tokens`, or
    `continuation` (the upstream cut the answer at its own per-request limit)."""

    reason: Literal["stop", "max_tokens", "continuation"] = "stop"
    token: str | None = None  # with `continuation`: the upstream's token to go on from


ProviderEvent = (
    TextDelta
    | ThoughtDelta
    | FunctionCall
    | MediaDelta
    | ServerStep
    | Citations
    | UsageReport
    | Finish
    | Embeddings
    | NativeChunk
)


class UpstreamError(Exception):
    """An upstream failed: an HTTP error `status`, or None when it could not be reached or
    timed out. `retry_after`: the upstream's `Retry-After`, in seconds. `target`: set by the
    gateway to the target's name."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body  # the upstream's error body, when it sent one
        self.target: str | None = None

    @property
    def retryable(self) -> bool:
        """Worth another attempt: no answer, 408, 429 or 5xx."""
        return self.status is None or self.status in (408, 429) or self.status >= 500

    @property
    def request_error(self) -> bool:
        """The request itself was refused (400, 422): no other target would take it either."""
        return self.status in (400, 422)


class Provider(Protocol):
    """One upstream (or local) model family."""

    def check(self, turn: Turn) -> None:
        """Raise InvalidArgument naming the field when this provider cannot honour the turn."""

    def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        """Run the turn. Cancelling the iterating task stops the upstream call."""

    async def close(self) -> None:
        """Release what the provider holds (models, connections)."""


@runtime_checkable
class Embedder(Protocol):
    """A provider that also makes embeddings (echo, OpenAI-compatible upstreams)."""

    async def embed(self, texts: list[str], dimensions: int | None) -> Embeddings:
        """One vector per text, `dimensions` long when given (else the model's own length).
        Raises InvalidArgument naming `dimensions` when it cannot honour it, UpstreamError
        when the upstream fails."""


class Ticket:
    """A place in a provider's queue, held from admission until the run ends; `release` is
    idempotent. `Ticket()` holds nothing (a provider with no queue)."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None] | None = None) -> None:
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


@runtime_checkable
class Admission(Protocol):
    """A provider that queues requests itself (the embedded model) and can refuse one early."""

    def admit(self) -> Ticket:
        """A place in the queue for a new foreground request. Raises ResourceExhausted when
        there is no room."""


def step_text(step: dict[str, Any]) -> str:
    """The text of a step's content, media shown as `[image image/png]`; for prompts and echo."""
    parts = []
    for item in step.get("content") or step.get("summary") or []:
        if item.get("type") == "text":
            parts.append(item.get("text", ""))
        else:
            parts.append(
                f"[{item.get('type')} {item.get('mime_type') or item.get('uri') or ''}]".replace(
                    " ]", "]"
                )
            )
    return " ".join(parts)
