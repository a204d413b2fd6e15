"""Wall-clock timestamps in the wire format (reference §4.1): `YYYY-MM-DDThh:mm:ssZ`, UTC."""

from __future__ import annotations

import time

__all__ = ["now"]


_last: tuple[int, str] = (-1, "")  # the second last formatted, and its text


def now() -> str:
    """The current UTC time, to the second, e.g. `2026-11-23T04:12:00Z` (formatted once per
    second: a run asks for it on several of its events)."""
    global _last
    second = int(time.time())
    if _last[0] != second:
        _last = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last[1]
