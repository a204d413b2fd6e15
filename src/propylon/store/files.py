"""Uploaded files (`FileStore`): the Gemini Files API's metadata rows and its resumable upload
sessions (migration 0014). The bytes are not the database's: they live under the data dir
(service/files.py), content-addressed per tenant, so a blob may back several files.

Its own small interface beside the `Store` of interactions: the embedded SQLite store
(store/sqlite_files.py) and the SQLAlchemy one (store/sql/files.py) implement it. The two
methods that end a blob's life or give one a name take a callback that runs inside their
write transaction (`place`, `unlink`): what the file system does and what the rows say
change together, so a blob is never removed while a row still names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FileRecord", "FileStore", "UploadSession"]


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file of `tenant`. `id`: the part of its name after `files/` (lowercase letters and
    digits). `sha256`: hex digest of its bytes, which name its blob. `size_bytes`: its length.
    `uri`: the absolute URI it was given at upload. Times: wire timestamps (UTC, seconds);
    `expires`: when it stops being served and is purged."""

    tenant: str
    id: str
    display_name: str | None
    mime_type: str
    size_bytes: int
    sha256: str
    uri: str
    created: str
    updated: str
    expires: str


@dataclass(frozen=True, slots=True)
class UploadSession:
    """A resumable upload under way: `id` (the upload URL's `upload_id`, unguessable: the
    URL is the capability the chunks are sent with) will become file `file_id` of `tenant`
    once `size_bytes` bytes are in; `received` of them are so far (the next chunk's offset)."""

    id: str
    tenant: str
    file_id: str
    display_name: str | None
    mime_type: str
    size_bytes: int
    received: int
    uri: str
    created: str
    expires: str


class FileStore(Protocol):
    """Persistence of files and upload sessions. Safe to call concurrently, from several
    processes sharing the database."""

    async def create_upload(self, session: UploadSession) -> None:
        """Insert a new upload session."""

    async def get_upload(self, upload_id: str) -> UploadSession | None:
        """The session, or None."""

    async def advance_upload(self, upload_id: str, offset: int, received: int) -> bool:
        """Set the session's `received` to `received` if it is still `offset` (a
        compare-and-set: of two chunks sent at one offset, one counts). False otherwise."""

    async def delete_upload(self, upload_id: str) -> bool:
        """Drop the session (cancelled or refused). False when there was none."""

    async def finish_upload(
        self, upload_id: str, file: FileRecord, place: Callable[[], None]
    ) -> bool:
        """In one transaction: drop the session, insert `file`, and call `place` (which
        moves the bytes to the file's blob). False, changing nothing, when the session is gone
        or its tenant already has a file of that id."""

    async def get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        """The tenant's file (expired or not), or None."""

    async def list_files(
        self, tenant: str, after: str | None, limit: int, now: str
    ) -> list[FileRecord]:
        """Up to `limit` of the tenant's files that have not expired at `now` (a wire
        timestamp), ordered by id, with ids after `after`."""

    async def delete_file(
        self, tenant: str, file_id: str, unlink: Callable[[str], None]
    ) -> FileRecord | None:
        """In one transaction: delete the tenant's file and, when no other file of the tenant
        names its blob, call `unlink(sha256)`. The deleted file, or None when there was none."""

    async def purge_files(
        self, before: str, unlink: Callable[[str, str], None]
    ) -> tuple[list[FileRecord], list[UploadSession]]:
        """Delete every file and upload session expiring before `before` (a wire timestamp);
        in the same transaction call `unlink(tenant, sha256)` for each blob no remaining file
        names. The deleted files and sessions (the caller removes the sessions' bytes)."""
