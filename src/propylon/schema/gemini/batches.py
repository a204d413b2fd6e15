"""The Gemini API's batch requests on the wire: the body of `models/{m}:batchGenerateContent`
(inline requests) and the lines of a JSONL input file. Each yields `Inlined` requests: the
GenerateContentRequest as sent (checked like a generateContent body) and its `metadata`.
A batch's answer, the long-running operation, is written by service/batches.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from pydantic import Field, ValidationError

from propylon.errors import InvalidArgument
from propylon.schema.common import describe
from propylon.schema.gemini.request import GenerateContentRequest, Wire, parse

__all__ = ["BatchGenerateContentRequest", "Inlined", "inline_requests", "jsonl_requests"]

_REQUESTS = "batch.inputConfig.requests.requests"

# One request of a batch: the GenerateContentRequest as sent, and its `metadata` (or None).
Inlined = tuple[dict[str, Any], dict[str, Any] | None]


class InlinedRequest(Wire):
    request: dict[str, Any]  # a GenerateContentRequest, kept as sent (checked on its own)
    metadata: dict[str, Any] | None = None


class InlinedRequests(Wire):
    requests: list[InlinedRequest] = Field(min_length=1)


class InputConfig(Wire):
    requests: InlinedRequests | None = None
    file_name: str | None = None


class Batch(Wire):
    display_name: str | None = None
    input_config: InputConfig
    model: str | None = None


class BatchGenerateContentRequest(Wire):
    """`POST /{v}/models/{m}:batchGenerateContent`: `{"batch": {...}}`."""

    batch: Batch


def _unknown(obj: Wire, where: str) -> None:
    """400 naming the first field of `obj` (at `where`) that no model knows."""
    for key in obj.unknown():
        raise InvalidArgument(f"`{f'{where}.{key}' if where else key}` is not supported here")


def _checked(request: dict[str, Any], metadata: Any, model: str, where: str) -> Inlined:
    """One request, checked like a generateContent body (400 naming the field under `where`);
    it names the batch's model or none."""
    try:
        parsed = GenerateContentRequest.model_validate(request)
    except ValidationError as exc:
        raise InvalidArgument(describe(exc, where)) from None
    named = parsed.model
    if named and named.removeprefix("models/") != model.removeprefix("models/"):
        raise InvalidArgument(f"`{where}.model`: `{named}` differs from the batch's model")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidArgument(f"`{where.rsplit('.', 1)[0]}.metadata` must be an object")
    return request, metadata


def inline_requests(body: Any, model: str) -> tuple[str, list[Inlined], str | None]:
    """The display name, the inline requests and the input file of a `:batchGenerateContent`
    body for `model`: either requests (the file None) or `batch.inputConfig.fileName`, a
    Files API file of JSONL requests (the requests empty: `jsonl_requests` reads them).
    Raises InvalidArgument naming the field."""
    parsed = parse(BatchGenerateContentRequest, body)
    _unknown(parsed, "")
    batch = parsed.batch
    _unknown(batch, "batch")
    _unknown(batch.input_config, "batch.inputConfig")
    if batch.model and batch.model.removeprefix("models/") != model.removeprefix("models/"):
        raise InvalidArgument(f"`batch.model`: `{batch.model}` differs from the model in the path")
    config = batch.input_config
    if config.file_name is not None:
        if config.requests is not None:
            raise InvalidArgument(
                "`batch.inputConfig`: set one of `fileName` and `requests`, not both"
            )
        return batch.display_name or "", [], config.file_name
    if config.requests is None:
        raise InvalidArgument("`batch.inputConfig.requests` (or `fileName`) is required")
    _unknown(config.requests, "batch.inputConfig.requests")
    items = []
    for index, inlined in enumerate(config.requests.requests):
        _unknown(inlined, f"{_REQUESTS}.{index}")
        where = f"{_REQUESTS}.{index}.request"
        items.append(_checked(inlined.request, inlined.metadata, model, where))
    return batch.display_name or "", items, None


def jsonl_requests(data: bytes, model: str) -> Iterator[Inlined]:
    """The requests of a JSONL input file: one `{"key": ..., "request": {...}}` per line (the
    key becomes the result's `metadata.key`); blank lines are skipped. Raises
    InvalidArgument naming the line."""
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InvalidArgument(f"input file line {number}: not JSON") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
            raise InvalidArgument(f"input file line {number}: `request` must be an object")
        key = entry.get("key")
        metadata = {"key": str(key)} if key is not None else None
        yield _checked(entry["request"], metadata, model, f"input file line {number}: request")
