"""Use cases of the Files API: the resumable upload (start, chunks, finalize, query, cancel),
get, list, delete, download, the purge of expired files, and the resolution of a file URI in
a request's content to the file's bytes, for every provider.

A file is its tenant's alone: another tenant's id is NotFound everywhere, as is an expired
file (until the purge deletes it). Uploads are refused past `max_file_bytes` before a byte
is stored: at start (the declared length) and at every chunk (past the declared length).
The upload's state is a row (any process sharing the database takes its next chunk) and its
bytes a file under the data dir (store/blobs.py).
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import string
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from propylon.config import Settings
from propylon.domain.caller import Caller
from propylon.domain.clock import now
from propylon.errors import InvalidArgument, NotFound
from propylon.store.blobs import Blobs
from propylon.store.files import FileRecord, FileStore, UploadSession

__all__ = ["Chunk", "FileService", "Received"]

_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 16
_FLUSH = 1024 * 1024  # bytes gathered before each write to disk
_SESSION_SECONDS = 3600.0  # an upload session lasts at least this long (else: the file TTL)
_MEDIA = frozenset({"image", "audio", "video", "document"})
# A files URI: `files/<id>`, or an http(s) URL of a `/{version}/files/<id>` path
_NAME = re.compile(r"files/([a-z0-9-]{1,40})")
_PATH = re.compile(r"/[^/]+/files/([a-z0-9-]{1,40})")
_ID = re.compile(r"[a-z0-9-]{1,40}")


def _later(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


@dataclass(frozen=True, slots=True)
class Chunk:
    """One request to an upload URL: its `X-Goog-Upload-Command` (a set of `upload`,
    `finalize`, `query`, `cancel`), `X-Goog-Upload-Offset`, declared `Content-Length`, and
    its body's bytes as they arrive."""

    commands: frozenset[str]
    offset: int | None
    length: int | None
    body: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class Received:
    """The answer to a chunk: `status` (`active`, `final` or `cancelled`), the bytes in so
    far, and the file once final."""

    status: str
    received: int
    file: FileRecord | None = None


class FileService:
    """The Files API over a FileStore and the data dir's blobs."""

    def __init__(self, store: FileStore, blobs: Blobs, settings: Settings) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings

    # -- upload ------------------------------------------------------------------------

    async def start(
        self,
        caller: Caller,
        size: int,
        mime_type: str,
        display_name: str | None,
        wanted_id: str | None,
        base: str,
    ) -> UploadSession:
        """Open an upload of `size` bytes for `caller`'s tenant; its file's `uri` will be
        `<base>/files/<id>` (`base`: the server's URL up to the version segment). Raises
        InvalidArgument for a size over `max_file_bytes` or a name the tenant has taken."""
        limit = self.settings.max_file_bytes
        if size > limit:
            raise InvalidArgument(
                f"the file is {size} bytes, over the limit of {limit} bytes (`max_file_bytes`)"
            )
        file_id = wanted_id or "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
        if wanted_id and await self.store.get_file(caller.tenant, wanted_id) is not None:
            raise InvalidArgument(f"file `files/{wanted_id}` already exists")
        timestamp = now()
        session = UploadSession(
            id=secrets.token_urlsafe(32),
            tenant=caller.tenant,
            file_id=file_id,
            display_name=display_name,
            mime_type=mime_type,
            size_bytes=size,
            received=0,
            uri=f"{base}/files/{file_id}",
            created=timestamp,
            expires=_later(max(self.settings.file_ttl_seconds, _SESSION_SECONDS)),
        )
        await asyncio.to_thread(self.blobs.create_partial, session.id)
        try:
            await self.store.create_upload(session)
        except BaseException:
            await asyncio.to_thread(self.blobs.drop_partial, session.id)
            raise
        return session

    async def session(self, upload_id: str, caller: Caller | None) -> UploadSession:
        """The upload `upload_id` (its URL is its credential: `caller` is None when the
        request sent no key). Raises NotFound for none, another tenant's, or an expired one."""
        session = await self.store.get_upload(upload_id)
        if (
            session is None
            or (caller is not None and caller.tenant != session.tenant)
            or session.expires <= now()
        ):
            raise NotFound("no such upload: its URL is unknown, expired or finished")
        return session

    async def receive(self, session: UploadSession, chunk: Chunk) -> Received:
        """Apply one chunk request to `session`. Raises InvalidArgument for a malformed
        command, an offset other than the bytes received so far (nothing is written), bytes
        past the declared size (the upload is cancelled: nothing stays stored) or a finalize
        before every byte is in; NotFound when the session ended meanwhile."""
        commands = chunk.commands
        if commands == {"query"}:
            return Received("active", session.received)
        if commands == {"cancel"}:
            await self._cancel(session)
            return Received("cancelled", session.received)
        if commands not in ({"upload"}, {"upload", "finalize"}, {"finalize"}):
            raise InvalidArgument(
                "`X-Goog-Upload-Command` must be `upload`, `upload, finalize`, `finalize`, "
                "`query` or `cancel`"
            )
        received = session.received
        if "upload" in commands:
            received = await self._upload(session, chunk)
        if "finalize" not in commands:
            return Received("active", received)
        if received != session.size_bytes:
            raise InvalidArgument(
                f"cannot finalize: {received} of the {session.size_bytes} bytes declared "
                "have been received"
            )
        return Received("final", received, await self._finish(session))

    async def _upload(self, session: UploadSession, chunk: Chunk) -> int:
        offset = chunk.offset
        if offset is None:
            raise InvalidArgument("`X-Goog-Upload-Offset` is required with `upload`")
        if offset != session.received:
            raise InvalidArgument(
                f"`X-Goog-Upload-Offset` is {offset}, but {session.received} bytes have been "
                "received: send the chunk that starts there"
            )
        room = session.size_bytes - offset
        if chunk.length is not None and chunk.length > room:
            await self._cancel(session)
            raise self._overflow(session)
        written = 0
        pending: list[bytes] = []
        gathered = 0
        async for piece in chunk.body:
            written += len(piece)
            if written > room:
                await self._cancel(session)
                raise self._overflow(session)
            pending.append(piece)
            gathered += len(piece)
            if gathered >= _FLUSH:
                await self._flush(session, offset + written - gathered, pending)
                pending, gathered = [], 0
        if pending:
            await self._flush(session, offset + written - gathered, pending)
        if written and not await self.store.advance_upload(session.id, offset, offset + written):
            raise InvalidArgument(
                "another chunk at this offset was received first: query the upload's state"
            )
        return offset + written

    async def _flush(self, session: UploadSession, at: int, pieces: list[bytes]) -> None:
        await asyncio.to_thread(self.blobs.write, session.id, at, b"".join(pieces))

    def _overflow(self, session: UploadSession) -> InvalidArgument:
        return InvalidArgument(
            f"the chunk runs past the {session.size_bytes} bytes the upload declared; the "
            "upload is cancelled"
        )

    async def _cancel(self, session: UploadSession) -> None:
        await self.store.delete_upload(session.id)
        await asyncio.to_thread(self.blobs.drop_partial, session.id)

    async def _finish(self, session: UploadSession) -> FileRecord:
        digest = await asyncio.to_thread(self.blobs.seal, session.id, session.size_bytes)
        timestamp = now()
        file = FileRecord(
            tenant=session.tenant,
            id=session.file_id,
            display_name=session.display_name,
            mime_type=session.mime_type,
            size_bytes=session.size_bytes,
            sha256=digest,
            uri=session.uri,
            created=timestamp,
            updated=timestamp,
            expires=_later(self.settings.file_ttl_seconds),
        )

        def place() -> None:
            self.blobs.place(session.id, session.tenant, digest)

        if not await self.store.finish_upload(session.id, file, place):
            if await self.store.get_upload(session.id) is None:
                raise NotFound("no such upload: its URL is unknown, expired or finished")
            await self._cancel(session)
            raise InvalidArgument(f"file `files/{session.file_id}` already exists")
        return file

    async def write(
        self,
        caller: Caller,
        file_id: str,
        display_name: str,
        mime_type: str,
        data: bytes,
        base: str,
    ) -> FileRecord:
        """Store `data` as the caller's file `file_id` (a file Propylon makes, such as a
        batch's results), or return the file of that id if it exists. Raises InvalidArgument
        for `data` over `max_file_bytes`."""
        existing = await self.store.get_file(caller.tenant, file_id)
        if existing is not None:
            return existing
        session = await self.start(caller, len(data), mime_type, display_name, file_id, base)
        try:
            await asyncio.to_thread(self.blobs.write, session.id, 0, data)
            if not await self.store.advance_upload(session.id, 0, len(data)):
                raise NotFound("no such upload: its URL is unknown, expired or finished")
            return await self._finish(session)
        except BaseException:
            await self._cancel(session)
            raise

    # -- files -------------------------------------------------------------------------

    async def get(self, caller: Caller, file_id: str) -> FileRecord:
        """The caller's file `file_id` (with or without `files/`). Raises NotFound for none,
        another tenant's, or an expired one."""
        file_id = file_id.removeprefix("files/")
        file = await self.store.get_file(caller.tenant, file_id)
        if file is None or file.expires <= now():
            raise NotFound(f"file `files/{file_id}` not found")
        return file

    async def page(
        self, caller: Caller, size: int, token: str | None
    ) -> tuple[list[FileRecord], str | None]:
        """Up to `size` of the caller's files after page token `token`, and the next page's
        token (None on the last page). Raises InvalidArgument for a token not made here."""
        after = None
        if token:
            try:
                after = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
            except ValueError:
                after = None
            if after is None or not _ID.fullmatch(after):
                raise InvalidArgument("`pageToken` is not a token this server made")
        files = await self.store.list_files(caller.tenant, after, size + 1, now())
        if len(files) <= size:
            return files, None
        files = files[:size]
        return files, base64.urlsafe_b64encode(files[-1].id.encode()).decode()

    async def delete(self, caller: Caller, file_id: str) -> None:
        """Delete the caller's file, and its blob when no other file of the tenant has the
        same bytes. Raises NotFound as `get` does."""
        file = await self.get(caller, file_id)
        blobs = self.blobs

        def unlink(sha256: str) -> None:
            blobs.unlink(file.tenant, sha256)

        if await self.store.delete_file(caller.tenant, file.id, unlink) is None:
            raise NotFound(f"file `files/{file.id}` not found")

    async def content(
        self, caller: Caller, file_id: str, at_most: int | None = None
    ) -> tuple[FileRecord, bytes]:
        """The caller's file and its bytes. Raises NotFound as `get` does, and
        InvalidArgument for a file over `at_most` bytes (before any is read)."""
        file = await self.get(caller, file_id)
        if at_most is not None and file.size_bytes > at_most:
            raise InvalidArgument(
                f"the file `files/{file.id}` is {file.size_bytes} bytes; a file a request "
                f"names is read whole, at most {at_most} bytes (`max_inline_file_bytes`)"
            )
        try:
            data = await asyncio.to_thread(self.blobs.blob(file.tenant, file.sha256).read_bytes)
        except FileNotFoundError:  # deleted or purged since the row was read
            raise NotFound(f"file `files/{file.id}` not found") from None
        return file, data

    async def purge(self) -> int:
        """Delete every expired file and upload session, with the bytes no file names any
        more. Returns how many files were deleted."""
        files, uploads = await self.store.purge_files(now(), self.blobs.unlink)
        for session in uploads:
            await asyncio.to_thread(self.blobs.drop_partial, session.id)
        return len(files)

    # -- use ---------------------------------------------------------------------------

    def file_id_of(self, uri: str) -> str | None:
        """The id of the file `uri` names, if it names one of Propylon's: `files/<id>`, or
        an http(s) URL whose path is `/{version}/files/<id>` (under `path_prefix` or not)
        on a host other than Google's (`*.googleapis.com`: Google's own files, which `gemini`
        targets take as sent). None for any other URI."""
        match = _NAME.fullmatch(uri)
        if match:
            return match.group(1)
        parts = urlsplit(uri)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or host.endswith("googleapis.com"):
            return None
        path = parts.path
        prefix = self.settings.path_prefix.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path.removeprefix(prefix)
        match = _PATH.fullmatch(path)
        return match.group(1) if match else None

    async def load(self, caller: Caller, uri: str) -> tuple[str, str] | None:
        """(mime type, base64 bytes) of the caller's file `uri` names; None when `uri` names
        no file of Propylon's. Raises NotFound for an unknown, another tenant's or an
        expired file, InvalidArgument for one over `max_inline_file_bytes`."""
        file_id = self.file_id_of(uri)
        if file_id is None:
            return None
        file, data = await self.content(caller, file_id, self.settings.max_inline_file_bytes)
        return file.mime_type, base64.b64encode(data).decode()

    async def inline_steps(
        self, steps: list[dict[str, Any]], caller: Caller
    ) -> list[dict[str, Any]]:
        """`steps` with every media content item whose `uri` names a file of the caller made
        an inline one (`data`, base64, and the file's `mime_type` unless the item has one).
        Unchanged steps are the same objects; changed ones are copies. Raises NotFound as
        `load` does."""
        result = []
        for step in steps:
            content = step.get("content")
            if isinstance(content, list) and any(_named(item) for item in content):
                items = []
                for item in content:
                    loaded = await self.load(caller, item["uri"]) if _named(item) else None
                    if loaded is not None:
                        mime, data = loaded
                        item = {k: v for k, v in item.items() if k != "uri"}
                        item["data"] = data
                        item["mime_type"] = item.get("mime_type") or mime
                    items.append(item)
                step = {**step, "content": items}
            result.append(step)
        return result


def _named(item: Any) -> bool:
    """A media content item sent by `uri`, without inline data."""
    return (
        isinstance(item, dict)
        and item.get("type") in _MEDIA
        and isinstance(item.get("uri"), str)
        and not item.get("data")
    )
