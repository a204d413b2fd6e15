"""FileStore on the SQLite file of an SQLiteStore (the `files` and `file_uploads` tables,
migration 0014), sharing its one writer and its readers. The one writer thread serialises
the transactions that place or unlink blobs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from propylon.store.files import FileRecord, UploadSession
from propylon.store.queries import FILES, file_of, file_params, upload_of, upload_params
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteFileStore"]


class SQLiteFileStore:
    """FileStore over `store`'s file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def create_upload(self, session: UploadSession) -> None:
        await self._store._write(
            lambda conn: conn.execute(FILES.INSERT_UPLOAD, upload_params(session))
        )

    async def get_upload(self, upload_id: str) -> UploadSession | None:
        def run(conn: sqlite3.Connection) -> UploadSession | None:
            row = conn.execute(FILES.GET_UPLOAD, {"id": upload_id}).fetchone()
            return upload_of(row) if row else None

        return await self._store._read(run)

    async def advance_upload(self, upload_id: str, offset: int, received: int) -> bool:
        params = {"id": upload_id, "offset": offset, "received": received}
        return await self._store._write(
            lambda conn: conn.execute(FILES.ADVANCE_UPLOAD, params).rowcount > 0
        )

    async def delete_upload(self, upload_id: str) -> bool:
        return await self._store._write(
            lambda conn: conn.execute(FILES.DELETE_UPLOAD, {"id": upload_id}).rowcount > 0
        )

    async def finish_upload(
        self, upload_id: str, file: FileRecord, place: Callable[[], None]
    ) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            key = {"tenant": file.tenant, "id": file.id}
            if conn.execute(FILES.GET_UPLOAD, {"id": upload_id}).fetchone() is None:
                return False
            if conn.execute(FILES.GET_FILE, key).fetchone() is not None:
                return False
            conn.execute(FILES.DELETE_UPLOAD, {"id": upload_id})
            conn.execute(FILES.INSERT_FILE, file_params(file))
            place()
            return True

        return await self._store._write(run)

    async def get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        def run(conn: sqlite3.Connection) -> FileRecord | None:
            row = conn.execute(FILES.GET_FILE, {"tenant": tenant, "id": file_id}).fetchone()
            return file_of(row) if row else None

        return await self._store._read(run)

    async def list_files(
        self, tenant: str, after: str | None, limit: int, now: str
    ) -> list[FileRecord]:
        params = {"tenant": tenant, "after": after or "", "limit": limit, "now": now}
        return await self._store._read(
            lambda conn: [file_of(row) for row in conn.execute(FILES.LIST_FILES, params)]
        )

    async def delete_file(
        self, tenant: str, file_id: str, unlink: Callable[[str], None]
    ) -> FileRecord | None:
        def run(conn: sqlite3.Connection) -> FileRecord | None:
            key = {"tenant": tenant, "id": file_id}
            row = conn.execute(FILES.GET_FILE, key).fetchone()
            if row is None:
                return None
            file = file_of(row)
            conn.execute(FILES.DELETE_FILE, key)
            named = {"tenant": tenant, "sha256": file.sha256}
            if conn.execute(FILES.BLOB_NAMED, named).fetchone() is None:
                unlink(file.sha256)
            return file

        return await self._store._write(run)

    async def purge_files(
        self, before: str, unlink: Callable[[str, str], None]
    ) -> tuple[list[FileRecord], list[UploadSession]]:
        def run(conn: sqlite3.Connection) -> tuple[list[FileRecord], list[UploadSession]]:
            key = {"before": before}
            files = [file_of(row) for row in conn.execute(FILES.EXPIRED_FILES, key)]
            uploads = [upload_of(row) for row in conn.execute(FILES.EXPIRED_UPLOADS, key)]
            conn.execute(FILES.DELETE_EXPIRED_FILES, key)
            conn.execute(FILES.DELETE_EXPIRED_UPLOADS, key)
            for tenant, sha256 in sorted({(f.tenant, f.sha256) for f in files}):
                named = {"tenant": tenant, "sha256": sha256}
                if conn.execute(FILES.BLOB_NAMED, named).fetchone() is None:
                    unlink(tenant, sha256)
            return files, uploads

        return await self._store._write(run)
