"""What the two store implementations share: SQL with named parameters (`:name`, which the
stdlib `sqlite3` driver and SQLAlchemy's `text()` both take) and the decoding of rows.

The embedded store runs it on `sqlite3` (store/sqlite_*.py), the SQLAlchemy store on
PostgreSQL or SQLite (store/sql/). Where the dialects differ, a builder takes `sqlite`: JSON is
read with `json_extract` on SQLite and `::jsonb` operators on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from propylon.domain.events import Event
from propylon.store.agents import AgentRecord
from propylon.store.base import ApiKey, InteractionRecord, Snapshot
from propylon.store.console import DeliveryRow, UsageQuery
from propylon.store.listing import ListQuery

__all__ = [
    "AGENT_COLUMNS",
    "CHAIN_BACK",
    "DISABLED",
    "FENCED",
    "HISTORY",
    "INTERACTION_COLUMNS",
    "KEY_COLUMNS",
    "RUNNING",
    "agent_of",
    "api_key_of",
    "delivery_row_of",
    "dumps",
    "listing_sql",
    "projection_update",
    "record_of",
    "usage_sql",
]

INTERACTION_COLUMNS = (
    "id",
    "status",
    "created",
    "updated",
    "previous_interaction_id",
    "background",
    "request",
    "input",
    "input_steps",
    "steps",
    "usage",
    "errors",
    "last_seq",
    "cost_usd",
    "tenant",
    "api_key_id",
    "upstream_id",
    "run_epoch",
)
KEY_COLUMNS = "id, key_hash, tenant, name, admin, policy, created, revoked, api_revision"
AGENT_COLUMNS = "tenant, id, definition, created"
RUNNING = "('in_progress', 'queued')"  # the statuses a run may still write in
# What `append_fenced` adds to the WHERE of `projection_update` (parameter `run_epoch`).
FENCED = f" AND run_epoch = :run_epoch AND status IN {RUNNING}"
DISABLED = "disabled_due_to_failed_deliveries"  # a webhook's state after too many failures
HISTORY = """
WITH RECURSIVE chain(id, prev, depth) AS (
    SELECT id, previous_interaction_id, 0 FROM interactions WHERE id = :id
    UNION ALL
    SELECT i.id, i.previous_interaction_id, c.depth + 1
    FROM interactions i JOIN chain c ON i.id = c.prev
)
SELECT i.input_steps, i.steps FROM chain c JOIN interactions i ON i.id = c.id
ORDER BY c.depth DESC
"""
CHAIN_BACK = """
WITH RECURSIVE chain(id, depth) AS (
    SELECT previous_interaction_id, 1 FROM interactions WHERE id = :id
    UNION ALL
    SELECT i.previous_interaction_id, c.depth + 1 FROM interactions i JOIN chain c ON i.id = c.id
    WHERE c.depth < :limit
)
SELECT i.id, i.status, i.created, i.tenant FROM chain c JOIN interactions i ON i.id = c.id
ORDER BY c.depth
"""
_SERIES = {"model": "usage_model", "tenant": "tenant"}
# A page without `view=full` reads no content: the interaction's input and steps stay unread.
_BASIC = {"input": "NULL AS input", "input_steps": "'[]' AS input_steps", "steps": "'[]' AS steps"}


def dumps(value: Any) -> str:
    """JSON text of `value`, as the JSON columns hold it."""
    return orjson.dumps(value).decode()


def record_of(row: Sequence[Any]) -> InteractionRecord:
    """The record of a row of `INTERACTION_COLUMNS`, in that order."""
    (
        id_,
        status,
        created,
        updated,
        previous,
        background,
        request,
        input_,
        input_steps,
        steps,
        usage,
        errors,
        last_seq,
        cost_usd,
        tenant,
        api_key_id,
        upstream_id,
        run_epoch,
    ) = row
    return InteractionRecord(
        id=id_,
        status=status,
        created=created,
        updated=updated,
        previous_interaction_id=previous,
        background=bool(background),
        request=orjson.loads(request),
        input=orjson.loads(input_) if input_ else None,
        input_steps=orjson.loads(input_steps),
        steps=orjson.loads(steps),
        usage=orjson.loads(usage) if usage else None,
        errors=orjson.loads(errors),
        last_seq=last_seq,
        cost_usd=cost_usd,
        tenant=tenant,
        api_key_id=api_key_id,
        upstream_id=upstream_id,
        run_epoch=run_epoch,
    )


def api_key_of(row: Sequence[Any]) -> ApiKey:
    """The key of a row of `KEY_COLUMNS`."""
    id_, key_hash, tenant, name, admin, policy, created, revoked, api_revision = row
    return ApiKey(
        id=id_,
        key_hash=key_hash,
        tenant=tenant,
        name=name,
        admin=bool(admin),
        policy=orjson.loads(policy),
        created=created,
        revoked=revoked,
        api_revision=api_revision,
    )


def agent_of(row: Sequence[Any]) -> AgentRecord:
    """The agent of a row of `AGENT_COLUMNS`."""
    tenant, id_, definition, created = row
    return AgentRecord(tenant, id_, orjson.loads(definition), created)


def event_of(row: Sequence[Any]) -> Event:
    """The event of an `events` row `(seq, type, data)`."""
    seq, kind, data = row
    return Event(seq, kind, orjson.loads(data))


def history_steps(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """The steps of HISTORY's rows `(input_steps, output_steps)`, in row order."""
    steps: list[dict[str, Any]] = []
    for input_steps, output_steps in rows:
        steps.extend(orjson.loads(input_steps))
        steps.extend(orjson.loads(output_steps))
    return steps


def delivery_row_of(row: Sequence[Any]) -> DeliveryRow:
    """The console's view of a row `(id, payload, state, attempts, last_error)`."""
    id_, payload, state, attempts, error = row
    body = orjson.loads(payload)
    return DeliveryRow(id_, body.get("type", ""), body.get("timestamp", ""), state, attempts, error)


def projection_update(
    interaction_id: str, events: list[Event], snapshot: Snapshot
) -> tuple[str, dict[str, Any]]:
    """The UPDATE (and its parameters) of the projection columns that a batch of `events`
    ends at `snapshot`; a fenced append adds its conditions to the WHERE."""
    params: dict[str, Any] = {
        "id": interaction_id,
        "status": snapshot.status,
        "updated": snapshot.updated,
    }
    if events:
        params["last_seq"] = events[-1].seq
    for column, value in (
        ("steps", snapshot.steps),
        ("usage", snapshot.usage),
        ("errors", snapshot.errors),
    ):
        if value is not None:
            params[column] = dumps(value)
    if snapshot.cost_usd is not None:
        params["cost_usd"] = snapshot.cost_usd
    if snapshot.upstream_id is not None:
        params["upstream_id"] = snapshot.upstream_id
    sets = ", ".join(f"{column} = :{column}" for column in params if column != "id")
    return f"UPDATE interactions SET {sets} WHERE id = :id", params


def listing_sql(query: ListQuery, sqlite: bool) -> tuple[str, dict[str, Any]]:
    """The SELECT (and its parameters) of one page of `query`, on SQLite or PostgreSQL.

    `ORDER BY created DESC, id DESC LIMIT n` after the page token's keyset
    `(created, id) < (:after_created, :after_id)`: the index `interactions_tenant_created_id`
    (or, across tenants, `interactions_created_id`; migration 0009) is walked in order and the
    walk stops at `n` matching rows, never an OFFSET and never a sort of the table."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": query.limit}
    if query.tenant is not None:
        where.append("tenant = :tenant")
        params["tenant"] = query.tenant
    if query.after is not None:
        where.append("(created, id) < (:after_created, :after_id)")
        params["after_created"], params["after_id"] = query.after
    if query.created_after is not None:
        where.append("created > :created_after")
        params["created_after"] = query.created_after
    if query.created_before is not None:
        where.append("created < :created_before")
        params["created_before"] = query.created_before
    if query.id_contains:
        where.append("instr(id, :part) > 0" if sqlite else "strpos(id, :part) > 0")
        params["part"] = query.id_contains
    if query.statuses:
        names = [f"status_{i}" for i in range(len(query.statuses))]
        # SQLite: `+status`, never the status index, whose rows would need a sort; the
        # ordered walk stops after `limit` matches
        column = "+status" if sqlite else "status"
        where.append(f"{column} IN ({', '.join(':' + n for n in names)})")
        params.update(zip(names, query.statuses, strict=True))
    for field, value in (("model", query.model), ("agent", query.agent)):
        if value is not None:
            where.append(
                f"json_extract(request, '$.{field}') = :{field}"
                if sqlite
                else f"(request::jsonb ->> '{field}') = :{field}"
            )
            params[field] = value
    for i, (key, label) in enumerate(query.labels):
        params[f"label_{i}"] = f'$.labels."{key}"' if sqlite else key  # keys are [a-z0-9_-]
        if label is None:
            where.append(
                f"json_type(request, :label_{i}) IS NOT NULL"
                if sqlite
                else f"(request::jsonb -> 'labels' -> :label_{i}) IS NOT NULL"
            )
        else:
            where.append(
                f"json_extract(request, :label_{i}) = :value_{i}"
                if sqlite
                else f"(request::jsonb -> 'labels' ->> :label_{i}) = :value_{i}"
            )
            params[f"value_{i}"] = label
    columns = ", ".join(c if query.full else _BASIC.get(c, c) for c in INTERACTION_COLUMNS)
    condition = f"WHERE {' AND '.join(where)} " if where else ""
    sql = (
        f"SELECT {columns} FROM interactions {condition}ORDER BY created DESC, id DESC LIMIT :limit"
    )
    return sql, params


def usage_sql(query: UsageQuery, sqlite: bool) -> tuple[str, dict[str, Any]]:
    """The GROUP BY (and its parameters) of `query`, on SQLite or PostgreSQL: the usage
    columns of migration 0012 (virtual, in the covering index `interactions_usage`, on
    SQLite; stored on PostgreSQL); grouping by a label reads the rows of the range."""
    params: dict[str, Any] = {"since": query.since, "until": query.until}
    where = "created >= :since AND created < :until"
    if query.tenant is not None:
        where += " AND tenant = :tenant"
        params["tenant"] = query.tenant
    if query.group == "label":
        if sqlite:
            series = "json_extract(request, :label)"
            params["label"] = f'$.labels."{query.label_key}"'  # keys are [a-z0-9_-]
        else:
            series = "(request::jsonb -> 'labels' ->> :label)"
            params["label"] = query.label_key
    else:
        series = _SERIES[query.group]
    index = "INDEXED BY interactions_usage " if sqlite else ""
    sql = (
        f"SELECT substr(created, 1, 10) AS day, {series} AS series, count(*), "
        "sum(usage_input_tokens), sum(usage_output_tokens), sum(usage_total_tokens), "
        f"sum(cost_usd) FROM interactions {index}WHERE {where} "
        "GROUP BY day, series ORDER BY day, series"
    )
    return sql, params
