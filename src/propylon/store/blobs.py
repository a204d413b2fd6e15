"""The bytes of uploaded files, under the data dir (the rows are store/files.py's):

    <data_dir>/files/blobs/<tenant key>/<sha256 hex>   a tenant's blob, named by its digest
    <data_dir>/files/uploads/<upload id>               the bytes of an upload under way

Content-addressed per tenant: two files of one tenant with the same bytes share one blob, and
a tenant never reads another's. `<tenant key>` is the hex SHA-256 of the tenant's name (any
name is a safe directory). Processes that share a database must share the data dir.
Blocking file-system calls: run them off the event loop (service/files.py does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

__all__ = ["Blobs"]

_READ = 1024 * 1024


class Blobs:
    """The files directory under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "files"

    def blob(self, tenant: str, sha256: str) -> Path:
        """Where `tenant`'s blob of digest `sha256` (hex) is."""
        return self.root / "blobs" / hashlib.sha256(tenant.encode()).hexdigest() / sha256

    def partial(self, upload_id: str) -> Path:
        """Where the bytes of upload `upload_id` are gathered."""
        return self.root / "uploads" / upload_id

    def create_partial(self, upload_id: str) -> None:
        """An empty file for a new upload."""
        path = self.partial(upload_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")

    def write(self, upload_id: str, offset: int, data: bytes) -> None:
        """`data` written into the upload's bytes at `offset`."""
        with self.partial(upload_id).open("r+b") as handle:
            handle.seek(offset)
            handle.write(data)

    def seal(self, upload_id: str, size: int) -> str:
        """Cut the upload's bytes at `size` and return their hex SHA-256."""
        path = self.partial(upload_id)
        digest = hashlib.sha256()
        with path.open("r+b") as handle:
            handle.truncate(size)
            while chunk := handle.read(_READ):
                digest.update(chunk)
        return digest.hexdigest()

    def place(self, upload_id: str, tenant: str, sha256: str) -> None:
        """Move the upload's bytes to the tenant's blob of `sha256` (one that is there
        already has the same bytes). Idempotent: a second call finds the move done."""
        target = self.blob(tenant, sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = self.partial(upload_id)
        if source.exists():
            os.replace(source, target)

    def unlink(self, tenant: str, sha256: str) -> None:
        """Remove the tenant's blob (gone already: nothing to do)."""
        with contextlib.suppress(FileNotFoundError):
            self.blob(tenant, sha256).unlink()

    def drop_partial(self, upload_id: str) -> None:
        """Remove the bytes of an upload that will not finish."""
        with contextlib.suppress(FileNotFoundError):
            self.partial(upload_id).unlink()
