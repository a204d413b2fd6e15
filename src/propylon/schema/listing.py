"""The query parameters of `GET /{v}/interactions` (Propylon's listing; Google has none).
Failures become InvalidArgument (HTTP 400) naming the parameter.

    page_size       1..100, default 20
    page_token      the `next_page_token` of the previous page, with the same filters
    view            `basic` (default: no steps) or `full` (the steps, as `get` shows them)
    status          an interaction status; repeated: any of them
    model, agent    the request's `model` / `agent`, exactly as it was sent
    label           `key:value` (that value) or `key` (set, to anything); repeated: all
    created_after   RFC 3339 with an offset; exclusive; compared to the second
    created_before  likewise
    tenant          admin keys: one tenant's (default every tenant's); other keys: their own
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from propylon.domain import lifecycle
from propylon.errors import InvalidArgument

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "ListInteractions", "parse_list", "wire_time"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # Google's label keys
_REPEATED = frozenset({"status", "label"})
_STATUSES = lifecycle.RUNNING | lifecycle.TERMINAL


class ListInteractions(BaseModel):
    """A listing's parameters; `labels` holds the parsed `label` filters as (key, value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    page_token: str | None = None
    view: Literal["basic", "full"] = "basic"
    status: tuple[str, ...] = ()
    model: str | None = None
    agent: str | None = None
    label: tuple[tuple[str, str | None], ...] = ()
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    tenant: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _known_statuses(cls, values: str | Iterable[str]) -> tuple[str, ...]:
        values = [values] if isinstance(values, str) else list(values)
        for value in values:
            if value not in _STATUSES:
                raise ValueError(
                    f"`{value}` is not a status: one of {', '.join(sorted(_STATUSES))}"
                )
        return tuple(values)

    @field_validator("label", mode="before")
    @classmethod
    def _label_filters(cls, values: str | Iterable[str]) -> tuple[tuple[str, str | None], ...]:
        filters: list[tuple[str, str | None]] = []
        for value in [values] if isinstance(values, str) else values:
            key, colon, label = value.partition(":")
            if not _LABEL_KEY.fullmatch(key):
                raise ValueError(
                    f"`{value}`: write `key:value` or `key`, the key in lowercase letters, "
                    "digits, `_` and `-`, starting with a letter"
                )
            filters.append((key, label if colon else None))
        return tuple(filters)


def parse_list(items: Iterable[tuple[str, str]]) -> ListInteractions:
    """Validate a query string's (name, value) pairs. `status` and `label` may repeat; any
    other parameter given twice, or unknown, is refused. Raises InvalidArgument."""
    fields: dict[str, Any] = {}
    for name, value in items:
        if name in _REPEATED:
            fields.setdefault(name, []).append(value)
        elif name in fields:
            raise InvalidArgument(f"query parameter `{name}` is given more than once")
        else:
            fields[name] = value
    try:
        return ListInteractions.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "query"
        if error["type"] == "extra_forbidden":
            known = ", ".join(ListInteractions.model_fields)
            raise InvalidArgument(
                f"unknown query parameter `{name}`; known: {known} (labels: `label=key:value`)"
            ) from None
        message = str(error["msg"]).removeprefix("Value error, ")
        if name in ("created_after", "created_before"):
            message += " (an RFC 3339 timestamp with an offset, e.g. 2026-11-23T04:12:00Z)"
        raise InvalidArgument(f"query parameter `{name}`: {message}") from None


def wire_time(value: datetime) -> str:
    """`value` in the stored timestamps' form, UTC to the second: `2026-11-23T04:12:00Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
