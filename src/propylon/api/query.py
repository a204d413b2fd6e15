"""Query parameters every surface reads the same way; a bad value is a 400 naming it."""

from __future__ import annotations

from starlette.requests import Request

from propylon.errors import InvalidArgument

__all__ = ["flag", "integer"]


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


def integer(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    """The integer query parameter `name`, from `low` to `high` (absent: `default`). Raises
    InvalidArgument for any other value."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise InvalidArgument(
            f"query parameter `{name}` must be an integer from {low} to {high}", param=name
        )
    return int(value)
