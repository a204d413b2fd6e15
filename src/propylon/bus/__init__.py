"""Live fan-out of new events (bus/base.py): in this process, or through Redis."""

from __future__ import annotations

from propylon.bus.base import Bus

__all__ = ["bus_for"]


def bus_for(redis_url: str | None, limit: int) -> Bus:
    """The in-process bus, or Redis pub/sub at `redis_url` (the `redis_url` setting; needs the
    `distributed` extra: ValueError without it). `limit`: events buffered per reader (the
    `stream_buffer_events` setting)."""
    if redis_url is None:
        from propylon.bus.memory import MemoryBus

        return MemoryBus(limit)
    try:
        from propylon.bus.redis import RedisBus
    except ImportError as exc:
        raise ValueError(
            f"`redis_url` needs the `distributed` extra (pip install -e '.[distributed]'): {exc}"
        ) from None
    return RedisBus(redis_url, limit=limit)
