"""The data-dir lock: one server per data dir.

A second server on the same SQLite file would take the first one's live runs for runs a dead
process left behind, and its start-up recovery would end them `failed` (`interrupted`). So
`propylon serve` takes an exclusive `flock` on `<data_dir>/propylon.lock` before anything
touches the store and holds it for its life; the file names the holder's PID. The kernel drops
the lock when the process ends, however it ends: a crashed server leaves no stale lock.

The CLI's store commands (`keys`, `export`, `import`, `purge`) do not take it: SQLite itself
serialises their writes with the running server's.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

__all__ = ["DataDirInUse", "DataDirLock"]


class DataDirInUse(RuntimeError):
    """Another process holds the data dir's lock; `pid` is what its lock file says."""

    def __init__(self, data_dir: Path, pid: str) -> None:
        super().__init__(
            f"the data dir {data_dir} is in use by another Propylon server (PID {pid}, "
            f"holding {data_dir / 'propylon.lock'}); stop it, or give this server another "
            "`--data-dir`"
        )
        self.pid = pid


class DataDirLock:
    """The exclusive lock of `data_dir` (created if needed). Use as `with`, or `acquire` and
    `release`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.path = self.data_dir / "propylon.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now, or raise DataDirInUse naming the holder's PID (never waits)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Not truncated on open: the holder's PID must stay readable by whoever is refused.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirInUse(self.data_dir, holder or "unknown") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
