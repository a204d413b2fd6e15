"""What the two store implementations share: SQL with named parameters (`:name`, which the
stdlib `sqlite3` driver and SQLAlchemy's `text()` both take) and the decoding of rows.

The embedded store runs it on `sqlite3` (store/sqlite_*.py), the SQLAlchemy store on
PostgreSQL or SQLite (store/sql/). Where the dialects differ, a builder takes `sqlite`: JSON is
read with `json_extract` on SQLite and `::jsonb` operators on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import orjson

from propylon.domain.events import Event
from propylon.store.agents import AgentRecord
from propylon.store.base import ApiKey, InteractionRecord, Snapshot
from propylon.store.batches import RUNNING as BATCH_RUNNING
from propylon.store.batches import UNFINISHED as BATCH_UNFINISHED
from propylon.store.batches import BatchItem, BatchRecord
from propylon.store.caches import CacheRecord
from propylon.store.console import DeliveryRow, UsageQuery
from propylon.store.files import FileRecord, UploadSession
from propylon.store.listing import ListQuery

__all__ = [
    "AGENT_COLUMNS",
    "BATCH_COLUMNS",
    "BATCH_COUNT",
    "BATCH_END",
    "BATCH_INSERT",
    "BATCH_ITEMS",
    "BATCH_ITEM_INSERT",
    "BATCH_LIST",
    "BATCH_NEWEST",
    "BATCH_RESULT",
    "BATCH_START",
    "BATCH_UNFINISHED_IDS",
    "CACHE_DELETE",
    "CACHE_GET",
    "CACHE_INSERT",
    "CACHE_LIST",
    "CACHE_PURGE",
    "CACHE_UPDATE",
    "CHAIN_BACK",
    "DISABLED",
    "FENCED",
    "FILES",
    "HISTORY",
    "INTERACTION_COLUMNS",
    "KEY_COLUMNS",
    "RUNNING",
    "agent_of",
    "api_key_of",
    "batch_item_of",
    "batch_item_row",
    "batch_of",
    "batch_row",
    "cache_of",
    "cache_params",
    "delivery_row_of",
    "dumps",
    "file_of",
    "file_params",
    "listing_sql",
    "projection_update",
    "record_of",
    "upload_of",
    "upload_params",
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
_CACHE_COLUMNS = (
    "tenant, id, model, display_name, content, tokens, created, updated, expires, upstream"
)
CACHE_INSERT = (
    f"INSERT INTO cached_contents ({_CACHE_COLUMNS}) VALUES (:tenant, :id, :model, "
    ":display_name, :content, :tokens, :created, :updated, :expires, :upstream) "
    "ON CONFLICT (tenant, id) DO NOTHING"
)
CACHE_GET = f"SELECT {_CACHE_COLUMNS} FROM cached_contents WHERE tenant = :tenant AND id = :id"
CACHE_LIST = (
    f"SELECT {_CACHE_COLUMNS} FROM cached_contents WHERE tenant = :tenant AND id > :after "
    "AND expires > :now ORDER BY id LIMIT :limit"
)
CACHE_UPDATE = (
    "UPDATE cached_contents SET expires = :expires, updated = :updated, upstream = :upstream "
    "WHERE tenant = :tenant AND id = :id"
)
CACHE_DELETE = "DELETE FROM cached_contents WHERE tenant = :tenant AND id = :id"
CACHE_PURGE = "DELETE FROM cached_contents WHERE expires <= :now"
_FILE_COLUMNS = (
    "tenant, id, display_name, mime_type, size_bytes, sha256, uri, created, updated, expires"
)
_UPLOAD_COLUMNS = (
    "id, tenant, file_id, display_name, mime_type, size_bytes, received, uri, created, expires"
)


class FILES:
    """The SQL of the files part (store/files.py), named parameters; both stores run it."""

    INSERT_UPLOAD = (
        f"INSERT INTO file_uploads ({_UPLOAD_COLUMNS}) VALUES (:id, :tenant, :file_id, "
        ":display_name, :mime_type, :size_bytes, :received, :uri, :created, :expires)"
    )
    GET_UPLOAD = f"SELECT {_UPLOAD_COLUMNS} FROM file_uploads WHERE id = :id"
    ADVANCE_UPLOAD = (
        "UPDATE file_uploads SET received = :received WHERE id = :id AND received = :offset"
    )
    DELETE_UPLOAD = "DELETE FROM file_uploads WHERE id = :id"
    INSERT_FILE = (
        f"INSERT INTO files ({_FILE_COLUMNS}) VALUES (:tenant, :id, :display_name, :mime_type, "
        ":size_bytes, :sha256, :uri, :created, :updated, :expires) "
        "ON CONFLICT (tenant, id) DO NOTHING"
    )
    GET_FILE = f"SELECT {_FILE_COLUMNS} FROM files WHERE tenant = :tenant AND id = :id"
    LIST_FILES = (
        f"SELECT {_FILE_COLUMNS} FROM files WHERE tenant = :tenant AND id > :after "
        "AND expires > :now ORDER BY id LIMIT :limit"
    )
    DELETE_FILE = "DELETE FROM files WHERE tenant = :tenant AND id = :id"
    BLOB_NAMED = "SELECT 1 FROM files WHERE tenant = :tenant AND sha256 = :sha256 LIMIT 1"
    EXPIRED_FILES = f"SELECT {_FILE_COLUMNS} FROM files WHERE expires < :before"
    DELETE_EXPIRED_FILES = "DELETE FROM files WHERE expires < :before"
    EXPIRED_UPLOADS = f"SELECT {_UPLOAD_COLUMNS} FROM file_uploads WHERE expires < :before"
    DELETE_EXPIRED_UPLOADS = "DELETE FROM file_uploads WHERE expires < :before"


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


def cache_params(cache: CacheRecord) -> dict[str, Any]:
    """The named parameters of CACHE_INSERT and CACHE_UPDATE for `cache`."""
    return {
        "tenant": cache.tenant,
        "id": cache.id,
        "model": cache.model,
        "display_name": cache.display_name,
        "content": dumps(cache.content),
        "tokens": cache.tokens,
        "created": cache.created,
        "updated": cache.updated,
        "expires": cache.expires,
        "upstream": dumps(cache.upstream),
    }


def cache_of(row: Sequence[Any]) -> CacheRecord:
    """The cached content of a row of the CACHE_* selects."""
    tenant, id_, model, display_name, content, tokens, created, updated, expires, upstream = row
    return CacheRecord(
        tenant,
        id_,
        model,
        display_name,
        orjson.loads(content),
        tokens,
        created,
        updated,
        expires,
        orjson.loads(upstream),
    )


def file_of(row: Sequence[Any]) -> FileRecord:
    """The file of a row of the files part's SELECTs."""
    tenant, id_, display_name, mime_type, size, sha256, uri, created, updated, expires = row
    return FileRecord(
        tenant, id_, display_name, mime_type, int(size), sha256, uri, created, updated, expires
    )


def file_params(file: FileRecord) -> dict[str, Any]:
    """The named parameters of `FILES.INSERT_FILE` for `file`."""
    return asdict(file)


def upload_of(row: Sequence[Any]) -> UploadSession:
    """The upload session of a row of the files part's SELECTs."""
    id_, tenant, file_id, name, mime_type, size, received, uri, created, expires = row
    return UploadSession(
        id_, tenant, file_id, name, mime_type, int(size), int(received), uri, created, expires
    )


def upload_params(session: UploadSession) -> dict[str, Any]:
    """The named parameters of `FILES.INSERT_UPLOAD` for `session`."""
    return asdict(session)


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


# Batches (store/batches.py): the same SQL on both stores.
BATCH_COLUMNS = (
    "id, tenant, model, display_name, state, created, updated, ended, caller, request_count, "
    "succeeded, failed, error"
)
_BATCH_OPEN = "(" + ", ".join(f"'{state}'" for state in BATCH_UNFINISHED) + ")"
BATCH_INSERT = (
    f"INSERT INTO batches ({BATCH_COLUMNS}) VALUES (:id, :tenant, :model, :display_name, "
    ":state, :created, :updated, :ended, :caller, :request_count, :succeeded, :failed, :error)"
)
BATCH_ITEM_INSERT = (
    "INSERT INTO batch_requests (batch_id, idx, request, metadata, result) "
    "VALUES (:batch_id, :idx, :request, :metadata, :result)"
)
BATCH_LIST = (
    f"SELECT {BATCH_COLUMNS} FROM batches WHERE tenant = :tenant AND id < :before "
    "ORDER BY id DESC LIMIT :limit"
)
BATCH_ITEMS = (
    "SELECT idx, request, metadata, result FROM batch_requests WHERE batch_id = :id ORDER BY idx"
)
BATCH_START = (
    f"UPDATE batches SET state = '{BATCH_RUNNING}', updated = :now "
    f"WHERE id = :id AND state IN {_BATCH_OPEN}"
)
# Written only while the batch runs and the request has no result: a cancelled, deleted or
# ended batch takes no more results, and a request is never counted twice.
BATCH_RESULT = (
    "UPDATE batch_requests SET result = :result "
    "WHERE batch_id = :id AND idx = :idx AND result IS NULL AND EXISTS "
    f"(SELECT 1 FROM batches WHERE id = :id AND state = '{BATCH_RUNNING}')"
)
BATCH_COUNT = (
    "UPDATE batches SET succeeded = succeeded + :ok, failed = failed + :bad, updated = :now "
    "WHERE id = :id"
)
BATCH_END = (
    "UPDATE batches SET state = :state, updated = :now, ended = :now, error = :error "
    f"WHERE id = :id AND state IN {_BATCH_OPEN}"
)
BATCH_UNFINISHED_IDS = f"SELECT id FROM batches WHERE state IN {_BATCH_OPEN}"
BATCH_NEWEST = "~"  # sorts after every batch id ([0-9a-z]): `before` of a first page


def batch_row(batch: BatchRecord) -> dict[str, Any]:
    """The parameters of BATCH_INSERT for `batch`."""
    return {
        "id": batch.id,
        "tenant": batch.tenant,
        "model": batch.model,
        "display_name": batch.display_name,
        "state": batch.state,
        "created": batch.created,
        "updated": batch.updated,
        "ended": batch.ended,
        "caller": dumps(batch.caller),
        "request_count": batch.request_count,
        "succeeded": batch.succeeded,
        "failed": batch.failed,
        "error": dumps(batch.error) if batch.error is not None else None,
    }


def batch_of(row: Sequence[Any]) -> BatchRecord:
    """The batch of a row of `BATCH_COLUMNS`."""
    (id_, tenant, model, name, state, created, updated, ended, caller, count, ok, bad, error) = row
    return BatchRecord(
        id=id_,
        tenant=tenant,
        model=model,
        display_name=name,
        state=state,
        created=created,
        updated=updated,
        ended=ended,
        caller=orjson.loads(caller),
        request_count=count,
        succeeded=ok,
        failed=bad,
        error=orjson.loads(error) if error else None,
    )


def batch_item_row(batch_id: str, item: BatchItem) -> dict[str, Any]:
    """The parameters of BATCH_ITEM_INSERT for `item` of batch `batch_id`."""
    return {
        "batch_id": batch_id,
        "idx": item.index,
        "request": dumps(item.request),
        "metadata": dumps(item.metadata) if item.metadata is not None else None,
        "result": dumps(item.result) if item.result is not None else None,
    }


def batch_item_of(row: Sequence[Any]) -> BatchItem:
    """The request of a row `(idx, request, metadata, result)` of BATCH_ITEMS."""
    idx, request, metadata, result = row
    return BatchItem(
        idx,
        orjson.loads(request),
        orjson.loads(metadata) if metadata else None,
        orjson.loads(result) if result else None,
    )
