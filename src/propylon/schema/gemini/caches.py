"""The Gemini API's `CachedContent` resource: the create and update bodies (either spelling of
each field, as Google takes them), `ttl` / `expireTime`, the resource as the SDK reads it, and
the listing's page tokens.

Wire shapes (Gemini API reference, "Caching"; google-genai's caches.py converters):

    create  {model, contents?, systemInstruction?, tools?, toolConfig?, ttl? | expireTime?,
             displayName?}
    update  {ttl? | expireTime?}          (query `updateMask`: `ttl`, `expireTime`, optional)
    resource {name: "cachedContents/<id>", model: "models/<m>", displayName?, createTime,
              updateTime, expireTime, usageMetadata?: {totalTokenCount}}

`ttl` is a protobuf Duration in JSON (`"300s"`, `"1.5s"`); `expireTime` an RFC 3339 timestamp
(a time without an offset is UTC). Neither given at create: one hour, as Google does.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from propylon.errors import InvalidArgument
from propylon.schema.gemini.request import Content, Tool, ToolConfig, Wire, parse
from propylon.store.caches import CacheRecord

__all__ = [
    "DEFAULT_TTL",
    "CreateCachedContent",
    "UpdateCachedContent",
    "decode_page_token",
    "encode_page_token",
    "expiry",
    "parse_create",
    "parse_update",
    "resource",
    "timestamp",
]

DEFAULT_TTL = timedelta(hours=1)
_MAX_TTL = timedelta(days=3650)  # beyond any use; keeps the arithmetic in range
_DURATION = re.compile(r"^(\d{1,12})(?:\.(\d{1,9}))?s$")
_UPDATABLE = {"ttl": "ttl", "expireTime": "expire_time", "expire_time": "expire_time"}


class CreateCachedContent(Wire):
    """`POST /{v}/cachedContents`."""

    model: str = Field(min_length=1)
    contents: list[Content] | None = None
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    ttl: str | None = None
    expire_time: str | None = None
    display_name: str | None = Field(default=None, max_length=128)
    name: str | None = None  # output only; ignored, as Google does


class UpdateCachedContent(Wire):
    """`PATCH /{v}/cachedContents/{id}`: only the expiry changes (Google: "Only expiration
    is updatable")."""

    ttl: str | None = None
    expire_time: str | None = None


def _refuse_unknown(body: Wire) -> None:
    for key in body.unknown():
        raise InvalidArgument(f"`{key}` is not a field of a cached content")


def parse_create(body: Any) -> CreateCachedContent:
    """The create body. Raises InvalidArgument naming the field (an unknown one too: it
    would be stored)."""
    parsed = parse(CreateCachedContent, body)
    _refuse_unknown(parsed)
    if parsed.ttl is not None and parsed.expire_time is not None:
        raise InvalidArgument("`ttl` and `expireTime` are alternatives: give one")
    if not parsed.contents and parsed.system_instruction is None:
        raise InvalidArgument("a cached content holds `contents` or a `systemInstruction`")
    return parsed


def parse_update(body: Any, mask: str | None) -> UpdateCachedContent:
    """The update body, keeping the fields `mask` (`updateMask`, comma-separated) names, or
    all when it is None. Raises InvalidArgument naming the field."""
    parsed = parse(UpdateCachedContent, body)
    _refuse_unknown(parsed)
    if mask is not None:
        fields = [f.strip() for f in mask.split(",") if f.strip()]
        for name in fields:
            if name not in _UPDATABLE:
                raise InvalidArgument(
                    f"`updateMask`: `{name}` cannot be updated; only `ttl` and `expireTime` can"
                )
        kept = {_UPDATABLE[name] for name in fields}
        parsed = UpdateCachedContent(
            ttl=parsed.ttl if "ttl" in kept else None,
            expire_time=parsed.expire_time if "expire_time" in kept else None,
        )
    if (parsed.ttl is None) == (parsed.expire_time is None):
        raise InvalidArgument("give one of `ttl` and `expireTime` (the new expiry)")
    return parsed


def _duration(value: str) -> timedelta:
    """A Duration in JSON (`"300s"`, `"0.5s"`). Raises InvalidArgument naming `ttl`."""
    match = _DURATION.match(value.strip())
    if match is None:
        raise InvalidArgument(
            f"`ttl`: `{value}` is not a duration; write seconds with an `s`, like `300s`"
        )
    seconds, fraction = match.groups()
    duration = timedelta(
        seconds=int(seconds), microseconds=int((fraction or "0").ljust(9, "0")) / 1000
    )
    if duration <= timedelta(0):
        raise InvalidArgument("`ttl` must be positive")
    if duration > _MAX_TTL:
        raise InvalidArgument(f"`ttl` must be at most {_MAX_TTL.days} days")
    return duration


def _instant(value: str) -> datetime:
    """An RFC 3339 timestamp (no offset: UTC). Raises InvalidArgument naming `expireTime`."""
    text = value.strip()
    # Python takes at most 6 fraction digits; Google writes up to 9
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"`expireTime`: `{value}` is not an RFC 3339 timestamp (like `2026-01-01T00:00:00Z`)"
        ) from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def expiry(ttl: str | None, expire_time: str | None, now: datetime) -> datetime:
    """When a cached content expires, from `ttl` or `expireTime` (neither: DEFAULT_TTL after
    `now`). Raises InvalidArgument for a malformed value, or an expiry not after `now`."""
    if expire_time is not None:
        instant = _instant(expire_time)
        if instant <= now:
            raise InvalidArgument("`expireTime` must be in the future")
        if instant - now > _MAX_TTL:
            raise InvalidArgument(f"`expireTime` must be at most {_MAX_TTL.days} days away")
        return instant
    return now + (_duration(ttl) if ttl is not None else DEFAULT_TTL)


def timestamp(instant: datetime) -> str:
    """The stored and wire form of `instant`: `YYYY-MM-DDThh:mm:ss.ffffffZ`, UTC (one width,
    so stored timestamps compare as text)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resource(cache: CacheRecord) -> dict[str, Any]:
    """The `CachedContent` resource of `cache` (its contents are input only, as Google's)."""
    body: dict[str, Any] = {
        "name": f"cachedContents/{cache.id}",
        "model": f"models/{cache.model}",
        "createTime": cache.created,
        "updateTime": cache.updated,
        "expireTime": cache.expires,
    }
    if cache.display_name:
        body["displayName"] = cache.display_name
    if cache.tokens is not None:
        body["usageMetadata"] = {"totalTokenCount": cache.tokens}
    return body


def encode_page_token(last_id: str) -> str:
    """An opaque page token: the listing goes on after the cached content `last_id`."""
    return base64.urlsafe_b64encode(f"cachedContents:{last_id}".encode()).decode()


def decode_page_token(token: str) -> str:
    """The id a page token goes on after. Raises InvalidArgument naming `pageToken`."""
    try:
        kind, _, last_id = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        kind, last_id = "", ""
    if kind != "cachedContents" or not last_id:
        raise InvalidArgument("`pageToken` is not a token of this listing")
    return last_id
