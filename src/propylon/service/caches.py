"""Use cases of `cachedContents`: create, read, list, extend and delete a tenant's cached
contents, and find the one a request names.

A cached content is the prefix of requests to come (`contents`, `systemInstruction`, `tools`,
`toolConfig`) for one model, stored per tenant until it expires (an expired one is not found,
and the purge deletes it: service/retention.py). It is checked at create for every target of
its model: a target that is not `gemini` must be able to take it (schema/gemini/turn.py), and
each `gemini` target gets a copy made upstream (`cachedContents` on that target, for its
model), whose name the record keeps per target label; a copy the upstream refuses (Google
caches nothing under its minimum size) is not made, and that target gets the content inline.
The copies are extended and deleted with ours, best effort: they expire when ours does.

A `fileData` part of the content naming one of the tenant's uploaded files (service/files.py)
is stored with the file's bytes inline, as Google's cache holds what it was made of: every
target can take it, and the cache outlives the file. A file over `max_request_bytes` (what an
inline body could carry) is refused.

`usageMetadata.totalTokenCount`: the first upstream copy's count, else echo's (words) when
the model's first target is echo, else not known.

Used by generateContent (service/generate.py: `cached_turn` for targets that are not `gemini`,
`native_cache` for those that are) and by Interactions (service/plan.py: `cache_prefix`, its
content inline on every target).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument, NotFound
from propylon.gateway.registry import ModelRegistry, ServedModel
from propylon.providers.base import NativeCache, Turn, UpstreamError
from propylon.providers.echo import EchoProvider, input_words
from propylon.providers.gemini import GeminiProvider
from propylon.schema.gemini.caches import (
    CreateCachedContent,
    UpdateCachedContent,
    decode_page_token,
    encode_page_token,
    expiry,
    resource,
    timestamp,
)
from propylon.schema.gemini.files import inline_file_parts
from propylon.schema.gemini.request import GenerateContentRequest, parse
from propylon.schema.gemini.turn import translate
from propylon.service.files import FileService
from propylon.service.quotas import Quotas
from propylon.store.caches import CacheRecord, CacheStore

__all__ = ["CacheService", "cache_prefix", "cached_turn", "find_cache", "native_cache"]

logger = logging.getLogger("propylon.caches")

_DEFAULT_PAGE = 50
_MAX_PAGE = 1000
_CACHED_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig")


def _now() -> datetime:
    return datetime.now(UTC)


def cache_prefix(cache: CacheRecord) -> Turn:
    """The Turn of `cache`'s content alone (its contents as steps, system instruction, tools
    and tool choice), for targets that are not `gemini`, its steps marked as cached. Raises
    InvalidArgument naming the field for what such targets cannot take."""
    if cache.content.get("contents"):
        turn = translate(parse(GenerateContentRequest, cache.content)).turn
    else:  # an instruction (and tools) only: translated with a placeholder turn, left out
        turn = translate(_request(cache.content)).turn
        turn.history = []
    turn.cached_steps = len(turn.history)
    turn.cached_instruction = turn.system_instruction is not None
    return turn


def cached_turn(cache: CacheRecord, request: dict[str, Any]) -> tuple[Turn, bool]:
    """The Turn of `cache`'s content followed by the generateContent `request` (camelCase,
    setting none of the cached fields but `contents`), for targets that are not `gemini`,
    its cached part marked (`cached_steps`, `cached_instruction`); and whether calls are
    `VALIDATED`. Raises InvalidArgument naming the field."""
    head = cache_prefix(cache)
    body = {**request, **cache.content}
    body["contents"] = [*cache.content.get("contents", []), *request.get("contents", [])]
    translated = translate(_request(body))
    turn = translated.turn
    turn.cached_steps, turn.cached_instruction = head.cached_steps, head.cached_instruction
    return turn, translated.validated


def _request(body: dict[str, Any]) -> GenerateContentRequest:
    """`body` as a GenerateContentRequest (an empty user turn when it has no contents)."""
    if not body.get("contents"):
        body = {**body, "contents": [{"role": "user", "parts": [{"text": ""}]}]}
    return parse(GenerateContentRequest, body)


async def find_cache(store: CacheStore, name: str, caller: Caller) -> CacheRecord:
    """The caller's tenant's unexpired cached content `name` (`cachedContents/<id>`, or the
    id). Raises NotFound (also for another tenant's, or an expired one)."""
    cache_id = name.removeprefix("cachedContents/")
    cache = await store.get_cache(caller.tenant, cache_id) if cache_id else None
    if cache is None or cache.expires <= timestamp(_now()):
        raise NotFound(f"cached content `{name}` not found (or expired)")
    return cache


class CacheService:
    """`cachedContents` over a CacheStore; `models()`: the current model registry (replaced
    on a reload)."""

    def __init__(
        self,
        store: CacheStore,
        models: Callable[[], ModelRegistry],
        files: FileService | None = None,
    ) -> None:
        """`files`: the Files API, whose files a cached content's `fileData` may name."""
        self.store = store
        self.models = models
        self.files = files

    async def create(self, body: CreateCachedContent, caller: Caller) -> dict[str, Any]:
        """Store a new cached content for `caller`'s tenant; its resource. Raises NotFound
        (model), PermissionDenied, InvalidArgument (naming the field); stores nothing then."""
        model = body.model.removeprefix("models/")
        served = self.models().resolve(model)
        Quotas.allows(caller, model)
        now = _now()
        expires = expiry(body.ttl, body.expire_time, now)
        content = body.model_dump(
            by_alias=True,
            exclude_none=True,
            include={"contents", "system_instruction", "tools", "tool_config"},
        )
        if self.files is not None:
            content = await self._inline_files(content, caller)
        stamp = timestamp(now)
        cache = CacheRecord(
            tenant=caller.tenant,
            id=secrets.token_hex(16),
            model=model,
            display_name=body.display_name,
            content=content,
            tokens=None,
            created=stamp,
            updated=stamp,
            expires=timestamp(expires),
        )
        tokens = None
        if any(not isinstance(t.provider, GeminiProvider) for t in served.targets):
            turn = cache_prefix(cache)  # what the other targets must take: 400 if not
            if isinstance(served.targets[0].provider, EchoProvider):
                tokens = input_words(turn)
        upstream, counted = await self._copies(served, cache)
        cache = replace(cache, tokens=counted if counted is not None else tokens, upstream=upstream)
        if not await self.store.create_cache(cache):  # a random id taken: never in practice
            await self._delete_copies(cache)
            raise InvalidArgument("could not store the cached content; send it again")
        return resource(cache)

    async def _inline_files(self, content: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """`content` with each `fileData` part naming one of the caller's files made an
        `inlineData` part of its bytes. Raises NotFound (an unknown, another tenant's or an
        expired file), InvalidArgument (a file over `max_request_bytes`)."""
        files = self.files
        assert files is not None
        limit = files.settings.max_request_bytes

        async def load(uri: str) -> tuple[str, str] | None:
            file_id = files.file_id_of(uri)
            if file_id is None:
                return None
            found = await files.get(caller, file_id)
            if found.size_bytes > limit:
                raise InvalidArgument(
                    f"`contents`: the file `files/{found.id}` is {found.size_bytes} bytes, over "
                    f"the {limit} bytes a cached content may hold (`max_request_bytes`)"
                )
            return await files.load(caller, uri)

        return await inline_file_parts(content, load)

    async def _copies(
        self, served: ServedModel, cache: CacheRecord
    ) -> tuple[dict[str, str], int | None]:
        """The upstream copies of `cache` on `served`'s `gemini` targets (label -> name) and
        the first one's token count. A target that refuses or fails gets none."""
        names: dict[str, str] = {}
        tokens: int | None = None
        body = {**cache.content, "expireTime": cache.expires}
        for target in served.targets:
            provider = target.provider
            if not isinstance(provider, GeminiProvider) or target.name in names:
                continue
            try:
                made = await provider.create_cache(body)
            except UpstreamError as exc:
                logger.warning(
                    "no upstream copy of a cached content on `%s` (sent inline instead): %s",
                    target.name,
                    exc.status or type(exc).__name__,
                )
                continue
            if isinstance(made.get("name"), str):
                names[target.name] = made["name"]
                if tokens is None:
                    tokens = (made.get("usageMetadata") or {}).get("totalTokenCount")
        return names, tokens

    async def find(self, name: str, caller: Caller) -> CacheRecord:
        """The caller's tenant's unexpired cached content `name` (`cachedContents/<id>`, or
        the id). Raises NotFound (also for another tenant's, or an expired one)."""
        return await find_cache(self.store, name, caller)

    async def get(self, cache_id: str, caller: Caller) -> dict[str, Any]:
        """The resource of the cached content. Raises NotFound."""
        return resource(await self.find(cache_id, caller))

    async def page(self, size: int | None, token: str | None, caller: Caller) -> dict[str, Any]:
        """`{"cachedContents": [...], "nextPageToken"?}`: the tenant's unexpired cached
        contents, ordered by id. Raises InvalidArgument for a bad `pageToken`."""
        limit = min(size or _DEFAULT_PAGE, _MAX_PAGE)
        after = decode_page_token(token) if token else None
        found = await self.store.list_caches(caller.tenant, after, limit + 1, timestamp(_now()))
        body: dict[str, Any] = {"cachedContents": [resource(c) for c in found[:limit]]}
        if len(found) > limit:
            body["nextPageToken"] = encode_page_token(found[limit - 1].id)
        return body

    async def update(
        self, cache_id: str, update: UpdateCachedContent, caller: Caller
    ) -> dict[str, Any]:
        """Set the cached content's expiry (and its copies', best effort); its resource.
        Raises NotFound, InvalidArgument."""
        cache = await self.find(cache_id, caller)
        now = _now()
        expires = timestamp(expiry(update.ttl, update.expire_time, now))
        cache = replace(cache, expires=expires, updated=timestamp(now))
        if not await self.store.update_cache(cache):  # deleted meanwhile
            raise NotFound(f"cached content `{cache_id}` not found (or expired)")
        for provider, name in self._copy_targets(cache):
            try:
                await provider.update_cache(name, expires)
            except UpstreamError as exc:
                logger.warning(
                    "the upstream copy of a cached content on `%s` keeps its expiry: %s",
                    provider.label,
                    exc.status or type(exc).__name__,
                )
        return resource(cache)

    async def delete(self, cache_id: str, caller: Caller) -> None:
        """Delete the cached content, then its upstream copies (best effort). Raises
        NotFound."""
        cache = await self.find(cache_id, caller)
        if not await self.store.delete_cache(cache.tenant, cache.id):
            raise NotFound(f"cached content `{cache_id}` not found (or expired)")
        await self._delete_copies(cache)

    async def _delete_copies(self, cache: CacheRecord) -> None:
        for provider, name in self._copy_targets(cache):
            try:
                await provider.delete_cache(name)
            except UpstreamError as exc:
                logger.warning(
                    "the upstream copy of a cached content on `%s` is left to expire: %s",
                    provider.label,
                    exc.status or type(exc).__name__,
                )

    def _copy_targets(self, cache: CacheRecord) -> list[tuple[GeminiProvider, str]]:
        """The `gemini` providers serving `cache`'s copies (by target label, in the current
        registry), with each copy's name."""
        providers = {
            target.name: target.provider
            for model in self.models().models
            for target in model.targets
            if isinstance(target.provider, GeminiProvider)
        }
        return [
            (providers[label], name)
            for label, name in cache.upstream.items()
            if isinstance(providers.get(label), GeminiProvider)
        ]

    def check_use(self, cache: CacheRecord, model: str, request: GenerateContentRequest) -> None:
        """A generateContent `request` of `model` may use `cache`: the same served model,
        and none of the fields the cache sets (Google's rule). Raises InvalidArgument."""
        models = self.models()
        if models.resolve(model) is not models.resolve(cache.model):
            raise InvalidArgument(
                f"Model used by GenerateContent request (models/{model.removeprefix('models/')}"
                f") and CachedContent (models/{cache.model}) has to be the same."
            )
        for name in ("system_instruction", "tools", "tool_config"):
            if getattr(request, name) is not None:
                raise InvalidArgument(
                    "CachedContent can not be used with GenerateContent request setting "
                    "system_instruction, tools or tool_config; move them to the cached content"
                )


def native_cache(cache: CacheRecord) -> NativeCache:
    """How `gemini` targets get `cache`: their upstream copies, else its fields inline."""
    inline = {k: v for k, v in cache.content.items() if k in _CACHED_FIELDS}
    return NativeCache(dict(cache.upstream), inline)
