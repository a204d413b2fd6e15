"""FileStore on SQLAlchemy: the `files` and `file_uploads` tables (migration 0014). The
transactions that place or unlink blobs take one advisory lock, so processes sharing the
database (and the data dir) never unlink a blob another one is naming."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.files import FileRecord, UploadSession
from propylon.store.queries import FILES, file_of, file_params, upload_of, upload_params
from propylon.store.sql.database import Database

__all__ = ["SQLFiles"]

_LOCK = 0x66696C6573  # "files": the advisory lock of blob placements and removals


class SQLFiles:
    """FileStore over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_upload(self, session: UploadSession) -> None:
        async def run(conn: AsyncConnection) -> None:
            await conn.execute(text(FILES.INSERT_UPLOAD), upload_params(session))

        await self._db.write(run)

    async def get_upload(self, upload_id: str) -> UploadSession | None:
        async def run(conn: AsyncConnection) -> UploadSession | None:
            row = (await conn.execute(text(FILES.GET_UPLOAD), {"id": upload_id})).first()
            return upload_of(row) if row else None

        return await self._db.read(run)

    async def advance_upload(self, upload_id: str, offset: int, received: int) -> bool:
        params = {"id": upload_id, "offset": offset, "received": received}

        async def run(conn: AsyncConnection) -> bool:
            return (await conn.execute(text(FILES.ADVANCE_UPLOAD), params)).rowcount > 0

        return await self._db.write(run)

    async def delete_upload(self, upload_id: str) -> bool:
        async def run(conn: AsyncConnection) -> bool:
            result = await conn.execute(text(FILES.DELETE_UPLOAD), {"id": upload_id})
            return result.rowcount > 0

        return await self._db.write(run)

    async def finish_upload(
        self, upload_id: str, file: FileRecord, place: Callable[[], None]
    ) -> bool:
        async def run(conn: AsyncConnection) -> bool:
            await self._db.advisory_lock(conn, _LOCK)
            key = {"tenant": file.tenant, "id": file.id}
            if (await conn.execute(text(FILES.GET_UPLOAD), {"id": upload_id})).first() is None:
                return False
            if (await conn.execute(text(FILES.GET_FILE), key)).first() is not None:
                return False
            await conn.execute(text(FILES.DELETE_UPLOAD), {"id": upload_id})
            await conn.execute(text(FILES.INSERT_FILE), file_params(file))
            place()
            return True

        return await self._db.write(run)

    async def get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        async def run(conn: AsyncConnection) -> FileRecord | None:
            key = {"tenant": tenant, "id": file_id}
            row = (await conn.execute(text(FILES.GET_FILE), key)).first()
            return file_of(row) if row else None

        return await self._db.read(run)

    async def list_files(
        self, tenant: str, after: str | None, limit: int, now: str
    ) -> list[FileRecord]:
        params = {"tenant": tenant, "after": after or "", "limit": limit, "now": now}

        async def run(conn: AsyncConnection) -> list[FileRecord]:
            return [file_of(row) for row in await conn.execute(text(FILES.LIST_FILES), params)]

        return await self._db.read(run)

    async def delete_file(
        self, tenant: str, file_id: str, unlink: Callable[[str], None]
    ) -> FileRecord | None:
        async def run(conn: AsyncConnection) -> FileRecord | None:
            await self._db.advisory_lock(conn, _LOCK)
            key = {"tenant": tenant, "id": file_id}
            row = (await conn.execute(text(FILES.GET_FILE), key)).first()
            if row is None:
                return None
            file = file_of(row)
            await conn.execute(text(FILES.DELETE_FILE), key)
            named = {"tenant": tenant, "sha256": file.sha256}
            if (await conn.execute(text(FILES.BLOB_NAMED), named)).first() is None:
                unlink(file.sha256)
            return file

        return await self._db.write(run)

    async def purge_files(
        self, before: str, unlink: Callable[[str, str], None]
    ) -> tuple[list[FileRecord], list[UploadSession]]:
        async def run(conn: AsyncConnection) -> tuple[list[FileRecord], list[UploadSession]]:
            await self._db.advisory_lock(conn, _LOCK)
            key = {"before": before}
            files = [file_of(row) for row in await conn.execute(text(FILES.EXPIRED_FILES), key)]
            uploads = [
                upload_of(row) for row in await conn.execute(text(FILES.EXPIRED_UPLOADS), key)
            ]
            await conn.execute(text(FILES.DELETE_EXPIRED_FILES), key)
            await conn.execute(text(FILES.DELETE_EXPIRED_UPLOADS), key)
            for tenant, sha256 in sorted({(f.tenant, f.sha256) for f in files}):
                named = {"tenant": tenant, "sha256": sha256}
                if (await conn.execute(text(FILES.BLOB_NAMED), named)).first() is None:
                    unlink(tenant, sha256)
            return files, uploads

        return await self._db.write(run)
