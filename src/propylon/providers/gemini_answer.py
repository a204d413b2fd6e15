"""Reading a Gemini `generateContent` answer (stream chunks, google/genai/types.py
`GenerateContentResponse`) into provider events.

Parts: `thought: true` text is a thought summary, a `thoughtSignature` opens a thought step
with that signature, other text is answer text, `functionCall` a call, `inlineData` /
`fileData` media of the answer (an image, audio), `executableCode` / `codeExecutionResult`
the `code_execution_call` / `_result` steps. The candidate's `groundingMetadata` (Google
Search) becomes `url_citation` annotations of the answer text (from `groundingSupports`
over `groundingChunks[].web`; offsets as Gemini gives them) and a `google_search_call`
(`webSearchQueries`) with its `google_search_result` (`searchEntryPoint.renderedContent`);
`urlContextMetadata` becomes a `url_context_call` with its `url_context_result`. These come
at the end of the answer, after its text, as in Google's own Interactions API.
`usageMetadata` is cumulative per chunk; the last one wins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from propylon.domain.usage import Usage
from propylon.providers.base import (
    Citations,
    Finish,
    FunctionCall,
    MediaDelta,
    ProviderEvent,
    ServerStep,
    TextDelta,
    ThoughtDelta,
    UsageReport,
)

__all__ = ["AnswerReader", "usage_of"]

_FAILURES = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "OTHER",
        "MALFORMED_FUNCTION_CALL",
        "IMAGE_SAFETY",
    }
)
_URL_STATUS = {
    "URL_RETRIEVAL_STATUS_SUCCESS": "success",
    "URL_RETRIEVAL_STATUS_ERROR": "error",
    "URL_RETRIEVAL_STATUS_PAYWALL": "paywall",
    "URL_RETRIEVAL_STATUS_UNSAFE": "unsafe",
}
_MEDIA_KINDS = ("image", "audio", "video")
# usageMetadata detail list -> Usage attribute
_DETAILS = {
    "promptTokensDetails": "input_by_modality",
    "candidatesTokensDetails": "output_by_modality",
    "cacheTokensDetails": "cached_by_modality",
    "toolUsePromptTokensDetails": "tool_use_by_modality",
}


def _new_id() -> str:
    return "gen_" + secrets.token_hex(6)


@dataclass
class AnswerReader:
    """Reads one answer's chunks in order (`read`), then what comes at its end (`end`)."""

    finish: Finish = field(default_factory=Finish)
    usage: Usage | None = None
    _code_call: str | None = None
    _queries: list[str] = field(default_factory=list)
    _suggestions: list[str] = field(default_factory=list)
    _citations: list[dict[str, Any]] = field(default_factory=list)
    _urls: dict[str, str] = field(default_factory=dict)

    def read(self, chunk: dict[str, Any]) -> list[ProviderEvent]:
        """The events of one chunk. Raises ValueError when the prompt or the answer was
        blocked (the run ends `failed`)."""
        events: list[ProviderEvent] = []
        blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise ValueError(f"Gemini blocked the prompt: {blocked}")
        for candidate in chunk.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                events.extend(self._part(part))
            self._grounding(candidate.get("groundingMetadata") or {})
            for entry in (candidate.get("urlContextMetadata") or {}).get("urlMetadata") or []:
                if entry.get("retrievedUrl"):
                    status = _URL_STATUS.get(entry.get("urlRetrievalStatus") or "", "error")
                    self._urls[entry["retrievedUrl"]] = status
            reason = candidate.get("finishReason")
            if reason in _FAILURES:
                raise ValueError(f"Gemini stopped the answer: {reason}")
            if reason == "MAX_TOKENS":
                self.finish = Finish("max_tokens")
            elif reason == "CONTINUATION":
                self.finish = Finish("continuation", candidate.get("continuationToken"))
            break  # one candidate is asked for
        if chunk.get("usageMetadata"):
            self.usage = usage_of(chunk["usageMetadata"])
            events.append(UsageReport(self.usage))
        return events

    def end(self) -> list[ProviderEvent]:
        """What the answer's end adds: citations, the grounding tools' steps, the usage
        with their count, and the finish."""
        events: list[ProviderEvent] = []
        if self._citations:
            events.append(Citations(self._citations))
        if self._queries or self._suggestions:
            call_id = _new_id()
            events.append(
                ServerStep(
                    {
                        "type": "google_search_call",
                        "id": call_id,
                        "arguments": {"queries": self._queries},
                        "search_type": "web_search",
                    }
                )
            )
            result = [{"search_suggestions": s} for s in self._suggestions]
            events.append(
                ServerStep({"type": "google_search_result", "call_id": call_id, "result": result})
            )
            if self.usage is not None and self._queries:
                self.usage.grounding_tools["google_search"] = len(self._queries)
                events.append(UsageReport(self.usage))
        if self._urls:
            call_id = _new_id()
            events.append(
                ServerStep(
                    {
                        "type": "url_context_call",
                        "id": call_id,
                        "arguments": {"urls": list(self._urls)},
                    }
                )
            )
            result = [{"url": url, "status": status} for url, status in self._urls.items()]
            events.append(
                ServerStep({"type": "url_context_result", "call_id": call_id, "result": result})
            )
        events.append(self.finish)
        return events

    def _part(self, part: dict[str, Any]) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        if part.get("thoughtSignature"):
            events.append(ThoughtDelta(signature=part["thoughtSignature"]))
        if part.get("thought") and part.get("text"):
            events.append(ThoughtDelta(summary=part["text"]))
        elif part.get("text"):
            events.append(TextDelta(part["text"]))
        elif part.get("functionCall"):
            call = part["functionCall"]
            events.append(
                FunctionCall(call.get("id") or _new_id(), call["name"], call.get("args") or {})
            )
        elif part.get("inlineData") or part.get("fileData"):
            events.append(_media(part))
        elif part.get("executableCode"):
            code = part["executableCode"]
            self._code_call = code.get("id") or _new_id()
            language = str(code.get("language") or "PYTHON").lower()
            arguments = {"code": code.get("code") or "", "language": language}
            step = {"type": "code_execution_call", "id": self._code_call, "arguments": arguments}
            events.append(ServerStep(step))
        elif part.get("codeExecutionResult"):
            outcome = part["codeExecutionResult"]
            step = {
                "type": "code_execution_result",
                "call_id": outcome.get("id") or self._code_call or _new_id(),
                "result": outcome.get("output") or "",
                "is_error": outcome.get("outcome") != "OUTCOME_OK",
            }
            events.append(ServerStep(step))
        return events

    def _grounding(self, metadata: dict[str, Any]) -> None:
        for query in metadata.get("webSearchQueries") or []:
            if query not in self._queries:
                self._queries.append(query)
        rendered = (metadata.get("searchEntryPoint") or {}).get("renderedContent")
        if rendered and rendered not in self._suggestions:
            self._suggestions.append(rendered)
        sources = metadata.get("groundingChunks") or []
        for support in metadata.get("groundingSupports") or []:
            segment = support.get("segment") or {}
            for index in support.get("groundingChunkIndices") or []:
                web = (sources[index] if 0 <= index < len(sources) else {}).get("web") or {}
                citation = {
                    "type": "url_citation",
                    "url": web.get("uri"),
                    "title": web.get("title"),
                    "start_index": segment.get("startIndex", 0),
                    "end_index": segment.get("endIndex"),
                }
                citation = {k: v for k, v in citation.items() if v is not None}
                if citation not in self._citations:
                    self._citations.append(citation)


def _media(part: dict[str, Any]) -> MediaDelta:
    """An `inlineData` (base64) or `fileData` (a URI) part as answer media. Raw audio's
    `audio/L16;codec=pcm;rate=24000` becomes `audio/l16` with `sample_rate` 24000."""
    inline = part.get("inlineData")
    source = inline or part["fileData"]
    mime, *params = str(source.get("mimeType") or "").split(";")
    mime = mime.strip().lower()
    kind = mime.split("/")[0]
    rate = next((int(p.split("=")[1]) for p in params if p.strip().startswith("rate=")), None)
    return MediaDelta(
        type=kind if kind in _MEDIA_KINDS else "document",  # type: ignore[arg-type]
        mime_type=mime or None,
        data=inline.get("data") if inline else None,
        uri=None if inline else source.get("fileUri"),
        sample_rate=rate,
    )


def usage_of(data: dict[str, Any]) -> Usage:
    """A `usageMetadata` object as Usage, per-modality details included."""
    usage = Usage(
        input_tokens=data.get("promptTokenCount") or 0,
        output_tokens=data.get("candidatesTokenCount") or 0,
        thought_tokens=data.get("thoughtsTokenCount") or 0,
        cached_tokens=data.get("cachedContentTokenCount") or 0,
        tool_use_tokens=data.get("toolUsePromptTokenCount") or 0,
    )
    for name, attribute in _DETAILS.items():
        target: dict[str, int] = getattr(usage, attribute)
        for entry in data.get(name) or []:
            modality = str(entry.get("modality") or "").lower()
            if modality and modality != "modality_unspecified":
                target[modality] = target.get(modality, 0) + int(entry.get("tokenCount") or 0)
    return usage
