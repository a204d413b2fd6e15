"""Query parameters every surface reads the same way; a bad value is a 400 naming it."""

from __future__ import annotations

from starlette.requests import Request

from propylon.errors import InvalidArgument

__all__ = ["flag"]


def flag(request: Request, name: str) -> bool:
    """The boolean query parameter `name` (`true`/`1`, `false`/`0`; absent: False). Raises
    InvalidArgument for any other value."""
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InvalidArgument(f"query parameter `{name}` must be true or false", param=name)
