"""Wall-clock timestamps in the wire format (reference §4.1): `YYYY-MM-DDThh:mm:ssZ`, UTC."""

from __future__ import annotations

import time

__all__ = ["now"]


def now() -> str:
    """The current UTC time, to the second, e.g. `2026-11-23T04:12:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
