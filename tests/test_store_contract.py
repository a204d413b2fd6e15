"""The store's contract, run on every implementation: the embedded SQLite store (stdlib
`sqlite3`), and the SQLAlchemy store on SQLite (aiosqlite) and on PostgreSQL (psycopg 3, a
fresh database per test on the local server: tests/postgres.py).

Every test drives the parts through their Protocols only (store/base.py, agents.py,
caches.py, listing.py, console.py, batches.py); what two processes would do is two stores on
one database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from propylon.bus.memory import MemoryBus
from propylon.config import Settings
from propylon.domain.clock import now
from propylon.domain.events import COMPLETED, Event
from propylon.runner.log import StoredLog
from propylon.service import reading
from propylon.service.ledger import Ledger
from propylon.store.agents import AgentRecord
from propylon.store.base import (
    ApiKey,
    Delivery,
    IdempotencyClaim,
    IdempotencyConflict,
    InteractionRecord,
    LogWrite,
    Reservation,
    Snapshot,
    SpendCap,
)
from propylon.store.batches import (
    CANCELLED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    BatchItem,
    BatchRecord,
)
from propylon.store.caches import CacheRecord
from propylon.store.console import UsageQuery
from propylon.store.files import FileRecord, UploadSession
from propylon.store.listing import ListQuery
from propylon.store.stores import Stores, open_stores
from tests.postgres import fresh_database

BACKENDS = ["sqlite", "sqlalchemy-sqlite", "postgresql"]
Opener = Callable[[], AbstractAsyncContextManager[Stores]]


@pytest.fixture(params=BACKENDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the backend's parts over one database (each call: another process's view)."""
    database = tmp_path / "propylon.db"

    def opener(url: str | None) -> Opener:
        @asynccontextmanager
        async def opened() -> AsyncIterator[Stores]:
            stores = open_stores(url, database)
            await stores.store.open()
            try:
                yield stores
            finally:
                await stores.store.close()

        return opened

    if request.param == "postgresql":
        with fresh_database() as url:
            yield opener(url)
    elif request.param == "sqlalchemy-sqlite":
        yield opener(f"sqlite:///{database}")
    else:
        yield opener(None)


def _record(
    interaction_id: str,
    *,
    status: str = "in_progress",
    claim: IdempotencyClaim | None = None,
    tenant: str = "acme",
    created: str | None = None,
    previous: str | None = None,
    request: dict[str, object] | None = None,
) -> InteractionRecord:
    return InteractionRecord(
        id=interaction_id,
        status=status,
        created=created or now(),
        updated=now(),
        request=request or {"model": "echo"},
        input="x",
        input_steps=[{"type": "user_input", "content": [{"type": "text", "text": "x"}]}],
        previous_interaction_id=previous,
        claim=claim,
        tenant=tenant,
        api_key_id="key_1",
    )


def _events(first: int, count: int) -> list[Event]:
    return [Event(seq, "content.delta", {"n": seq}) for seq in range(first, first + count)]


def test_create_append_get_read_events_and_history(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            await store.create(_record("v1_a", status="completed"), _events(1, 2))
            await store.create(_record("v1_b", previous="v1_a"), _events(1, 1))
            steps = [{"type": "model_output", "content": [{"type": "text", "text": "hi"}]}]
            snapshot = Snapshot(
                "completed", now(), steps=steps, usage={"total_tokens": 3}, cost_usd=0.5
            )
            assert await store.append_fenced("v1_b", 0, _events(2, 3), snapshot)
            record = await store.get("v1_b")
            assert record is not None
            assert (record.status, record.last_seq, record.steps) == ("completed", 4, steps)
            assert (record.usage, record.cost_usd, record.previous_interaction_id) == (
                {"total_tokens": 3},
                0.5,
                "v1_a",
            )
            assert record.input == "x" and record.background is False
            assert [e.seq for e in await store.read_events("v1_b", 1, 2)] == [2, 3]
            assert (await store.read_events("v1_b", 3, 10))[0].data == {"n": 4}
            history = await store.history("v1_b")
            assert history == [*record.input_steps, *record.input_steps, *steps]
            assert await store.get("v1_none") is None
            assert not await store.append_fenced("v1_none", 0, _events(1, 1), snapshot)
            # every append is fenced: there is no other way into a log
            assert not hasattr(store, "append")

    asyncio.run(scenario())


def test_an_idempotency_key_is_claimed_with_its_row(open_backend: Opener) -> None:
    """Of two creates claiming one key, the second writes nothing and learns the first; an
    expired claim is taken over; deleting the interaction frees its key."""

    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            claim = IdempotencyClaim("acme/k", "hash-1", time.time() + 60)
            await store.create(_record("v1_first", claim=claim), [])
            with pytest.raises(IdempotencyConflict) as lost:
                await store.create(_record("v1_second", claim=claim), [])
            assert (lost.value.interaction_id, lost.value.body_hash) == ("v1_first", "hash-1")
            assert await store.get("v1_second") is None
            found = await store.find_idempotency_key("acme/k", time.time())
            assert found == ("hash-1", "v1_first")
            lapsed = IdempotencyClaim("acme/old", "hash-2", time.time() - 1)
            await store.create(_record("v1_old", claim=lapsed), [])
            await store.create(_record("v1_new", claim=IdempotencyClaim("acme/old", "h", 1e12)), [])
            assert await store.find_idempotency_key("acme/old", time.time()) == ("h", "v1_new")
            assert await store.delete("v1_first")  # its key goes with it
            assert await store.find_idempotency_key("acme/k", time.time()) is None

    asyncio.run(scenario())


def test_a_write_that_fails_part_way_leaves_nothing_and_the_store_goes_on(
    open_backend: Opener,
) -> None:
    """A create whose row cannot be inserted (its id is taken) after its key was claimed in
    the same transaction: the claim is rolled back with it, and the next writes succeed."""

    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            await store.create(_record("v1_taken"), _events(1, 1))
            claim = IdempotencyClaim("acme/k", "hash", time.time() + 60)
            with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
                await store.create(_record("v1_taken", claim=claim), _events(1, 1))
            assert await store.find_idempotency_key("acme/k", time.time()) is None
            assert [e.seq for e in await store.read_events("v1_taken", 0, 10)] == [1]
            await store.create(_record("v1_next", claim=claim), _events(1, 1))
            assert await store.find_idempotency_key("acme/k", time.time()) == ("hash", "v1_next")

    asyncio.run(scenario())


def test_two_processes_claiming_one_key_at_once_write_one_interaction(
    open_backend: Opener,
) -> None:
    async def scenario() -> None:
        async with open_backend() as one, open_backend() as two:
            claim = IdempotencyClaim("acme/race", "hash", time.time() + 60)

            async def create(i: int) -> str:
                store = (one, two)[i % 2].store
                try:
                    await store.create(_record(f"v1_racer{i}", claim=claim), _events(1, 1))
                except IdempotencyConflict as conflict:
                    return conflict.interaction_id
                return f"v1_racer{i}"

            winners = set(await asyncio.gather(*(create(i) for i in range(12))))
            assert len(winners) == 1
            assert await one.store.unfinished() == [winners.pop()]

    asyncio.run(scenario())


def test_the_run_epoch_fences_appends(open_backend: Opener) -> None:
    """A claim bumps the epoch; an append under an older epoch, or after the end, writes
    nothing; a terminal interaction cannot be claimed."""

    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            await store.create(_record("v1_run", status="queued"), _events(1, 1))
            first = await store.claim_run("v1_run")
            second = await store.claim_run("v1_run")
            assert first is not None and second == first + 1
            running = Snapshot("in_progress", now())
            assert not await store.append_fenced("v1_run", first, _events(2, 1), running)
            assert await store.append_fenced("v1_run", second, _events(2, 1), running)
            done = Snapshot("completed", now())
            assert await store.append_fenced("v1_run", second, _events(3, 1), done)
            # after the end: no second terminal event, whoever holds the epoch
            assert not await store.append_fenced("v1_run", second, _events(4, 1), done)
            record = await store.get("v1_run")
            assert record is not None and (record.status, record.last_seq) == ("completed", 3)
            assert record.run_epoch == second
            assert [e.seq for e in await store.read_events("v1_run", 0, 10)] == [1, 2, 3]
            assert await store.claim_run("v1_run") is None
            assert await store.claim_run("v1_none") is None
            assert not await store.append_fenced("v1_none", 1, _events(1, 1), done)

    asyncio.run(scenario())


def test_a_group_commit_writes_many_logs_and_refuses_a_fenced_one_alone(
    open_backend: Opener,
) -> None:
    """`write_logs`: creates and appends of several logs in one transaction; an append fenced
    out (an older epoch, or after the end) writes nothing of it while the others are written;
    a group whose transaction fails writes nothing at all."""

    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            await store.create(_record("v1_old"), _events(1, 1))
            await store.create(_record("v1_taken"), _events(1, 1))
            epoch = await store.claim_run("v1_old")
            assert epoch is not None
            done = Delivery("msg_1", "https://example.com/hook", "{}", tenant="acme")
            ended = Snapshot("completed", now(), steps=[], usage={"total_tokens": 1})
            ended.deliveries = [done]
            written = await store.write_logs(
                [
                    LogWrite("v1_new", _events(1, 2), record=_record("v1_new")),
                    LogWrite("v1_old", _events(2, 1), epoch=epoch - 1, snapshot=ended),
                    LogWrite("v1_taken", _events(2, 3), epoch=0, snapshot=ended),
                ]
            )
            assert written == [True, False, True]
            assert [e.seq for e in await store.read_events("v1_new", 0, 10)] == [1, 2]
            assert [e.seq for e in await store.read_events("v1_old", 0, 10)] == [1]
            assert [e.seq for e in await store.read_events("v1_taken", 0, 10)] == [1, 2, 3, 4]
            old, taken = await store.get("v1_old"), await store.get("v1_taken")
            assert old is not None and (old.status, old.last_seq) == ("in_progress", 1)
            assert taken is not None and (taken.status, taken.last_seq) == ("completed", 4)
            assert [d.id for d in await store.due_deliveries(time.time() + 1, 10)] == ["msg_1"]
            # after its end nothing more is written, whoever asks
            late = await store.write_logs(
                [LogWrite("v1_taken", _events(5, 1), epoch=0, snapshot=ended)]
            )
            assert late == [False]
            # a duplicate event fails the transaction: none of its writes is kept
            with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
                await store.write_logs(
                    [
                        LogWrite("v1_more", _events(1, 1), record=_record("v1_more")),
                        LogWrite("v1_old", _events(1, 1), epoch=epoch, snapshot=ended),
                    ]
                )
            assert await store.get("v1_more") is None
            assert [e.seq for e in await store.read_events("v1_old", 0, 10)] == [1]
            assert (await store.get("v1_old")).status == "in_progress"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_tenants_export_unfinished_purge_and_delete(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            claim = IdempotencyClaim("acme/old", "h", time.time() + 60)
            await store.create(
                _record("v1_old", created="2020-01-01T00:00:00Z", claim=claim), _events(1, 2)
            )
            await store.create(_record("v1_new", status="completed"), _events(1, 1))
            await store.create(_record("v1_other", status="queued", tenant="zeta"), [])
            assert sorted(await store.tenants()) == ["acme", "zeta"]
            assert sorted(await store.unfinished()) == ["v1_old", "v1_other"]
            exported = await store.export("acme")
            assert [(r.id, len(events)) for r, events in exported] == [("v1_old", 2), ("v1_new", 1)]
            assert await store.purge("acme", "2021-01-01T00:00:00Z") == 1
            assert await store.get("v1_old") is None
            assert await store.read_events("v1_old", 0, 10) == []
            assert await store.find_idempotency_key("acme/old", time.time()) is None
            assert await store.delete("v1_new")
            assert not await store.delete("v1_new")
            assert await store.read_events("v1_new", 0, 10) == []

    asyncio.run(scenario())


def test_api_keys(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            key = ApiKey("key_1", "hash-1", "acme", "ci", False, {"rpm": 5}, "2026-01-01T00:00:00Z")
            admin = ApiKey("key_2", "hash-2", "ops", admin=True, created="2026-01-02T00:00:00Z")
            for k in (key, admin):
                await store.save_api_key(k)
            assert await store.api_key_by_hash("hash-1") == key
            assert await store.api_key_by_hash("nope") is None
            assert await store.api_key_by_id("key_1") == key
            assert await store.api_key_by_id("hash-1") is None
            assert await store.count_api_keys() == 2
            key.revoked, key.api_revision = now(), "2025-11-01"
            await store.save_api_key(key)  # replaced by id
            assert [k.id for k in await store.list_api_keys()] == ["key_1", "key_2"]
            assert (await store.list_api_keys())[0] == key
            assert (await store.list_api_keys())[1].admin is True
            assert await store.count_api_keys() == 1
            assert await store.api_key_by_id("key_1") == key  # revoked ones too

    asyncio.run(scenario())


def test_webhooks_and_their_outbox(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            store = s.store
            for i, tenant in enumerate(("acme", "acme", "zeta")):
                await store.save_webhook({"id": f"wh_{i}", "tenant": tenant, "state": "enabled"})
            await store.save_webhook({"id": "wh_0", "tenant": "acme", "state": "enabled", "n": 1})
            assert await store.get_webhook("wh_0") == {
                "id": "wh_0",
                "tenant": "acme",
                "state": "enabled",
                "n": 1,
            }
            assert [w["id"] for w in await store.list_webhooks("acme", None, 10)] == [
                "wh_0",
                "wh_1",
            ]
            assert [w["id"] for w in await store.list_webhooks(None, "wh_0", 1)] == ["wh_1"]
            deliveries = [
                Delivery(f"msg_{i}", "http://127.0.0.1:9/hook", f'{{"type": "t{i}"}}', "wh_0")
                for i in range(3)
            ]
            await store.enqueue(deliveries)
            await store.enqueue(deliveries[:1])  # an id already there is kept, not doubled
            # a per-request target, written with its interaction's end
            uris = Delivery("msg_uris", "http://127.0.0.1:9/other", "{}", None, tenant="acme")
            await store.create(_record("v1_hooked"), _events(1, 1), [uris])
            due = await store.due_deliveries(time.time(), 10)
            assert sorted(d.id for d in due) == ["msg_0", "msg_1", "msg_2", "msg_uris"]
            first = next(d for d in due if d.id == "msg_0")
            await store.delivery_done(first, True, None, None, 2)
            retry = next(d for d in due if d.id == "msg_1")
            await store.delivery_done(retry, False, "HTTP 500", time.time() + 3600, 2)
            assert "msg_1" not in {d.id for d in await store.due_deliveries(time.time(), 10)}
            await store.delivery_done(
                next(d for d in due if d.id == "msg_2"), False, "HTTP 500", None, 2
            )
            # two failures in a row: disabled, and its pending deliveries end failed, unsent
            webhook = await store.get_webhook("wh_0")
            assert webhook is not None and webhook["state"] == "disabled_due_to_failed_deliveries"
            assert {d.id for d in await store.due_deliveries(time.time() + 7200, 10)} == {
                "msg_uris"
            }
            rows = await s.console.deliveries("wh_0", 10)
            assert [(r.id, r.state, r.attempts) for r in rows] == [
                ("msg_2", "failed", 1),
                ("msg_1", "failed", 1),
                ("msg_0", "delivered", 1),
            ]
            assert rows[0].event == "t2"
            assert await store.delete_webhook("wh_1")
            assert not await store.delete_webhook("wh_1")
            assert await store.get_webhook("wh_1") is None

    asyncio.run(scenario())


def test_the_ledger_reserves_settles_and_recovers(open_backend: Opener) -> None:
    """A run that ended before the crash is settled to its recorded cost; one whose
    interaction is gone to its reservation; caps refuse once committed spend reaches them."""

    async def scenario() -> None:
        async with open_backend() as s:
            store, entries = s.store, s.ledger
            ended = _record("v1_ended", status="completed")
            ended.cost_usd = 1.0
            ended.usage = {"total_input_tokens": 7, "total_output_tokens": 3}
            await store.create(ended, [])
            since = "2000-01-01T00:00:00Z"
            cap = SpendCap(3.0, since, api_key_id="key_1")
            for interaction_id in ("v1_ended", "v1_gone"):
                reservation = Reservation(interaction_id, "acme", "key_1", now(), 2.0, 20)
                assert await entries.reserve(reservation, [cap]) is None
            assert (
                await entries.reserve(Reservation("v1_x", "acme", "key_1", now(), 2.0, 20), [cap])
                == cap
            )
            assert await entries.committed(since, api_key_id="key_1") == (4.0, 40)
            assert sorted(await entries.unsettled()) == ["v1_ended", "v1_gone"]
            assert await Ledger(entries, Settings()).recover(store.get) == 2
            assert await entries.unsettled() == []
            assert await entries.committed(since, tenant="acme") == (3.0, 30)
            assert not await entries.settle("v1_ended", 5.0, 5)  # settled once
            await entries.reserve(Reservation("v1_refused", "acme", None, now(), 1.0, 1), [])
            await entries.release("v1_refused")
            assert await entries.committed(since, tenant="acme") == (3.0, 30)
            assert await entries.prune("2999-01-01T00:00:00Z") == 2

    asyncio.run(scenario())


def test_a_log_fenced_out_of_its_run_settles_nothing(open_backend: Opener) -> None:
    """A writer whose run was taken over (a newer claim of its epoch) writes no end and
    settles no spend: the reservation stays open for the run's new owner, whose end settles
    it, once, at its own cost."""

    async def scenario() -> None:
        async with open_backend() as s:
            store, entries = s.store, s.ledger
            ledger = Ledger(entries, Settings())
            await store.create(_record("v1_fenced", status="queued"), _events(1, 1))
            await entries.reserve(Reservation("v1_fenced", "acme", "key_1", now(), 2.0, 20), [])
            ledger.adopt("v1_fenced")  # this process settles it when a run of its ends
            old, new = await store.claim_run("v1_fenced"), await store.claim_run("v1_fenced")
            assert old is not None and new is not None

            async def end(epoch: int, cost: float) -> StoredLog:
                record = await store.get("v1_fenced")
                assert record is not None
                record.cost_usd = cost
                existing = await reading.fold(store, "v1_fenced")
                log = StoredLog(
                    record, store, MemoryBus(16), existing, epoch=epoch, on_ended=ledger.settle
                )
                log.emit(COMPLETED, {"interaction": log.summary("completed")})
                await log.drain()
                return log

            assert (await end(old, 0.25)).fenced
            assert await entries.unsettled() == ["v1_fenced"]  # untouched by the fenced one
            assert await entries.committed("2000-01-01T00:00:00Z", tenant="acme") == (2.0, 20)
            assert not (await end(new, 0.5)).fenced
            assert await entries.unsettled() == []
            assert await entries.committed("2000-01-01T00:00:00Z", tenant="acme") == (0.5, 0)
            record = await store.get("v1_fenced")
            assert record is not None and (record.status, record.last_seq) == ("completed", 2)

    asyncio.run(scenario())


def test_the_reservations_of_dead_processes_are_recovered_but_unfinished_runs_left(
    open_backend: Opener,
) -> None:
    """`recover_lost` (the reconciler's, for processes that died): an ended run at its
    recorded cost, a run with no interaction (store=false, deleted) at its reservation; a run
    still unfinished is left to whoever ends it."""

    async def scenario() -> None:
        async with open_backend() as s:
            store, entries = s.store, s.ledger
            ended = _record("v1_done", status="completed")
            ended.cost_usd = 0.75
            await store.create(ended, [])
            await store.create(_record("v1_running", status="in_progress"), [])
            for interaction_id in ("v1_done", "v1_running", "v1_nostore"):
                reservation = Reservation(
                    interaction_id, "acme", "key_1", now(), 2.0, 20, owner="serve-dead"
                )
                assert await entries.reserve(reservation, []) is None
            ledger = Ledger(entries, Settings(), owner="worker-1")
            ids = ["v1_done", "v1_running", "v1_nostore"]
            assert await ledger.recover_lost(ids, store.get) == 2
            assert await entries.unsettled() == ["v1_running"]
            assert await entries.committed("2000-01-01T00:00:00Z", tenant="acme") == (4.75, 40)

    asyncio.run(scenario())


def test_concurrent_admissions_from_two_processes_hold_the_cap(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as one, open_backend() as two:
            cap = SpendCap(5.0, "2000-01-01T00:00:00Z", tenant="acme")

            async def admit(i: int) -> bool:
                ledger = (one, two)[i % 2].ledger
                reservation = Reservation(f"v1_{i}", "acme", None, now(), 1.0, 1)
                return await ledger.reserve(reservation, [cap]) is None

            admitted = await asyncio.gather(*(admit(i) for i in range(16)))
            assert sum(admitted) == 5
            assert await one.ledger.committed(cap.since, tenant="acme") == (5.0, 5)

    asyncio.run(scenario())


def test_agents(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            agents = s.agents
            for i in range(3):
                agent = AgentRecord("acme", f"agent-{i}", {"id": f"agent-{i}", "n": i}, now())
                assert await agents.create_agent(agent)
            assert not await agents.create_agent(AgentRecord("acme", "agent-0", {}, now()))
            assert await agents.create_agent(AgentRecord("zeta", "agent-0", {}, now()))
            found = await agents.get_agent("acme", "agent-1")
            assert found is not None and found.definition == {"id": "agent-1", "n": 1}
            page = await agents.list_agents("acme", "agent-0", 5)
            assert [a.id for a in page] == ["agent-1", "agent-2"]
            assert await agents.delete_agent("acme", "agent-0")
            assert not await agents.delete_agent("acme", "agent-0")
            assert await agents.get_agent("zeta", "agent-0") is not None

    asyncio.run(scenario())


def _cache(tenant: str, cache_id: str, day: str) -> CacheRecord:
    """A cached content expiring at the start of `day` (`YYYY-MM-DD`)."""
    expires = f"{day}T00:00:00.000000Z"
    return CacheRecord(
        tenant,
        cache_id,
        "echo",
        None,
        {"contents": [{"role": "user", "parts": [{"text": cache_id}]}]},
        1,
        "2026-01-01T00:00:00.000000Z",
        "2026-01-01T00:00:00.000000Z",
        expires,
        {"gemini:m": f"cachedContents/up-{cache_id}"},
    )


def test_cached_contents(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            caches = s.caches
            for i, day in enumerate(("02", "03", "04")):
                assert await caches.create_cache(_cache("acme", f"c{i}", f"2026-01-{day}"))
            assert not await caches.create_cache(_cache("acme", "c0", "2027-01-01"))
            assert await caches.create_cache(_cache("zeta", "c0", "2026-01-02"))
            found = await caches.get_cache("acme", "c1")
            assert found == _cache("acme", "c1", "2026-01-03")
            assert await caches.get_cache("zeta", "c1") is None
            # unexpired at the 2nd noon: c1 and c2; after c1: c2
            noon = "2026-01-02T12:00:00.000000Z"
            assert [c.id for c in await caches.list_caches("acme", None, 5, noon)] == ["c1", "c2"]
            assert [c.id for c in await caches.list_caches("acme", "c1", 5, noon)] == ["c2"]
            assert [c.id for c in await caches.list_caches("acme", None, 1, noon)] == ["c1"]
            extended = dataclasses.replace(
                found, expires="2026-02-01T00:00:00.000000Z", updated=noon, upstream={}
            )
            assert await caches.update_cache(extended)
            assert await caches.get_cache("acme", "c1") == extended
            assert not await caches.update_cache(dataclasses.replace(extended, tenant="zeta"))
            # expired at or before the 3rd: acme's c0 and zeta's c0, not the extended c1
            assert await caches.purge_caches("2026-01-03T00:00:00.000000Z") == 2
            assert await caches.get_cache("acme", "c0") is None
            assert await caches.get_cache("zeta", "c0") is None
            assert await caches.delete_cache("acme", "c1")
            assert not await caches.delete_cache("acme", "c1")
            assert await caches.get_cache("acme", "c2") is not None

    asyncio.run(scenario())


def _batch(batch_id: str, tenant: str = "acme", count: int = 3) -> BatchRecord:
    stamp = now()
    return BatchRecord(batch_id, tenant, "echo", "", PENDING, stamp, stamp, {"key_id": "k"}, count)


def test_batches(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s, open_backend() as other:
            batches = s.batches
            items = [
                BatchItem(i, {"contents": [i]}, {"key": str(i)} if i else None) for i in range(3)
            ]
            for batch_id in ("b1", "b2", "b3"):
                await batches.create_batch(_batch(batch_id), items)
            await batches.create_batch(_batch("b4", tenant="zeta"), items[:1])
            found = await batches.get_batch("b2")
            assert found is not None and found.caller == {"key_id": "k"}
            assert (found.state, found.request_count, found.succeeded) == (PENDING, 3, 0)
            assert [b.id for b in await batches.list_batches("acme", None, 2)] == ["b3", "b2"]
            assert [b.id for b in await batches.list_batches("acme", "b2", 5)] == ["b1"]
            assert await batches.batch_items("b2") == items
            assert sorted(await batches.unfinished_batches()) == ["b1", "b2", "b3", "b4"]
            # a result is taken only while the batch runs, once per request
            assert not await batches.record_result("b2", 0, {"response": {}}, True, now())
            assert await batches.start_batch("b2", now())
            assert await other.batches.start_batch("b2", now())  # a retry takes it again
            assert await batches.record_result("b2", 2, {"error": {"code": 3}}, False, now())
            assert not await other.batches.record_result("b2", 2, {"response": {}}, True, now())
            assert await other.batches.record_result("b2", 0, {"response": {"n": 0}}, True, now())
            found = await batches.get_batch("b2")
            assert found is not None and (found.state, found.succeeded, found.failed) == (
                RUNNING,
                1,
                1,
            )
            assert [i.result for i in await batches.batch_items("b2")] == [
                {"response": {"n": 0}},
                None,
                {"error": {"code": 3}},
            ]
            # an ended batch never starts, nor takes results, nor ends again
            assert await batches.end_batch("b2", SUCCEEDED, now())
            assert not await batches.end_batch("b2", CANCELLED, now())
            assert not await batches.start_batch("b2", now())
            assert not await batches.record_result("b2", 1, {"response": {}}, True, now())
            assert await batches.end_batch("b1", CANCELLED, now(), {"code": 1, "message": "x"})
            ended = await batches.get_batch("b1")
            assert ended is not None and ended.ended is not None
            assert ended.error == {"code": 1, "message": "x"}
            assert sorted(await batches.unfinished_batches()) == ["b3", "b4"]
            assert await batches.delete_batch("b2")
            assert not await batches.delete_batch("b2")
            assert await batches.get_batch("b2") is None and await batches.batch_items("b2") == []

    asyncio.run(scenario())


def _upload(upload_id: str, tenant: str = "acme", file_id: str = "f1") -> UploadSession:
    return UploadSession(
        upload_id,
        tenant,
        file_id,
        None,
        "text/plain",
        6,
        0,
        f"http://h/v1/files/{file_id}",
        "2026-01-01T00:00:00Z",
        "2026-01-03T00:00:00Z",
    )


def _file(
    file_id: str, sha256: str, tenant: str = "acme", expires: str = "2026-01-03T00:00:00Z"
) -> FileRecord:
    return FileRecord(
        tenant,
        file_id,
        "shown",
        "text/plain",
        6,
        sha256,
        f"http://h/v1/files/{file_id}",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
        expires,
    )


def test_files_and_upload_sessions(open_backend: Opener) -> None:
    async def scenario() -> None:
        placed: list[str] = []
        unlinked: list[tuple[str, str]] = []
        async with open_backend() as s, open_backend() as other:
            files = s.files
            await files.create_upload(_upload("u1"))
            # two processes send a chunk at offset 0: one counts
            assert await files.advance_upload("u1", 0, 3)
            assert not await other.files.advance_upload("u1", 0, 3)
            session = await other.files.get_upload("u1")
            assert session is not None and session.received == 3 and session.size_bytes == 6
            assert await files.finish_upload("u1", _file("f1", "aa"), lambda: placed.append("u1"))
            assert placed == ["u1"] and await files.get_upload("u1") is None
            assert not await files.finish_upload(
                "u1", _file("f1", "aa"), lambda: placed.append("x")
            )
            # a taken id: nothing changes, the session stays
            await files.create_upload(_upload("u2"))
            assert not await files.finish_upload(
                "u2", _file("f1", "bb"), lambda: placed.append("x")
            )
            assert placed == ["u1"] and await files.get_upload("u2") is not None
            assert await files.delete_upload("u2") and not await files.delete_upload("u2")
            # content-addressed per tenant: a blob goes with the last file of its tenant naming it
            for record in (_file("f2", "aa"), _file("f1", "aa", tenant="zeta")):
                await files.create_upload(_upload(record.id + record.tenant, record.tenant))
                assert await files.finish_upload(record.id + record.tenant, record, lambda: None)
            got = await files.get_file("acme", "f1")
            assert got == _file("f1", "aa")
            assert [
                f.id for f in await files.list_files("acme", None, 10, "2026-01-02T00:00:00Z")
            ] == ["f1", "f2"]
            assert [
                f.id for f in await files.list_files("acme", "f1", 10, "2026-01-02T00:00:00Z")
            ] == ["f2"]
            assert await files.list_files("acme", None, 10, "2026-01-04T00:00:00Z") == []

            def unlink(sha256: str) -> None:
                unlinked.append(("acme", sha256))

            assert await files.delete_file("acme", "f1", unlink) is not None
            assert unlinked == []  # f2 still names it
            assert await files.delete_file("acme", "f1", unlink) is None
            assert await files.delete_file("acme", "f2", unlink) is not None
            assert unlinked == [("acme", "aa")]
            assert await files.get_file("zeta", "f1") is not None  # another tenant's stays
            # the purge: expired files and sessions, and the blobs nothing names any more
            await files.create_upload(_upload("u3", "zeta", "f9"))
            gone, sessions = await files.purge_files(
                "2026-01-04T00:00:00Z", lambda tenant, sha: unlinked.append((tenant, sha))
            )
            assert [f.id for f in gone] == ["f1"] and [u.id for u in sessions] == ["u3"]
            assert unlinked[-1] == ("zeta", "aa")
            assert await files.get_file("zeta", "f1") is None

    asyncio.run(scenario())


def test_listing_pages_and_filters(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            for i in range(7):
                labels = {"team": "red" if i % 2 else "blue"} | ({"vip": "1"} if i == 3 else {})
                request = {"model": "echo" if i < 5 else "other", "labels": labels}
                created = f"2026-01-0{i + 1}T00:00:00Z"
                status = "completed" if i % 3 else "failed"
                await s.store.create(
                    _record(f"v1_{i}", status=status, created=created, request=request), []
                )
            await s.store.create(_record("v1_z", tenant="zeta"), [])
            listing = s.listing
            seen: list[str] = []
            after = None
            while page := await listing.list_interactions(
                ListQuery(tenant="acme", limit=3, after=after)
            ):
                seen += [r.id for r in page]
                after = (page[-1].created, page[-1].id)
            assert seen == [f"v1_{i}" for i in reversed(range(7))]

            async def ids(**filters: object) -> list[str]:
                query = ListQuery(tenant="acme", limit=50, **filters)  # type: ignore[arg-type]
                return [r.id for r in await listing.list_interactions(query)]

            assert await ids(labels=(("team", "red"),)) == ["v1_5", "v1_3", "v1_1"]
            assert await ids(labels=(("vip", None),)) == ["v1_3"]
            assert await ids(statuses=("failed",)) == ["v1_6", "v1_3", "v1_0"]
            assert await ids(model="other") == ["v1_6", "v1_5"]
            assert await ids(id_contains="_4") == ["v1_4"]
            assert await ids(
                created_after="2026-01-02T00:00:00Z", created_before="2026-01-04T00:00:00Z"
            ) == ["v1_2"]
            basic = (await listing.list_interactions(ListQuery(tenant="acme", limit=1)))[0]
            assert basic.input_steps == [] and basic.input is None
            full = await listing.list_interactions(ListQuery(tenant=None, limit=50, full=True))
            assert len(full) == 8 and all(r.input_steps for r in full)

    asyncio.run(scenario())


def test_console_usage_and_chains(open_backend: Opener) -> None:
    async def scenario() -> None:
        async with open_backend() as s:
            previous = None
            for i in range(4):
                record = _record(
                    f"v1_{i}",
                    status="completed",
                    created=f"2026-02-0{1 + i // 2}T10:00:00Z",
                    previous=previous,
                    request={"model": "echo" if i < 3 else "other", "labels": {"team": "red"}},
                )
                record.usage = {
                    "total_input_tokens": 2,
                    "total_output_tokens": 3,
                    "total_tokens": 5,
                }
                record.cost_usd = 0.25
                await s.store.create(record, [])
                previous = record.id
            rows = await s.console.usage(
                UsageQuery("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", tenant="acme")
            )
            assert [(r.day, r.series, r.interactions, r.total_tokens) for r in rows] == [
                ("2026-02-01", "echo", 2, 10),
                ("2026-02-02", "echo", 1, 5),
                ("2026-02-02", "other", 1, 5),
            ]
            assert rows[0].input_tokens == 4 and rows[0].output_tokens == 6
            assert rows[0].cost_usd == pytest.approx(0.5)
            by_label = await s.console.usage(
                UsageQuery(
                    "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", group="label", label_key="team"
                )
            )
            assert [(r.day, r.series, r.interactions) for r in by_label] == [
                ("2026-02-01", "red", 2),
                ("2026-02-02", "red", 2),
            ]
            back = await s.console.chain_back("v1_3", 2)
            assert [link.id for link in back] == ["v1_2", "v1_1"]
            forward = await s.console.chain_forward("v1_0", 10)
            assert [(link.id, link.tenant) for link in forward] == [("v1_1", "acme")]

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["sqlalchemy-sqlite", "postgresql"])
def test_the_create_hook_runs_in_the_creates_transaction(backend: str, tmp_path: Path) -> None:
    """SQLAlchemy store only (the embedded store's jobs are in-process: it has no hook): the
    hook sees the row on the driver's connection, and its failure writes nothing."""

    async def scenario(url: str) -> None:
        stores = open_stores(url, tmp_path / "unused.db")
        store = stores.store
        await store.open()
        seen: list[tuple[str, int]] = []

        async def hook(connection: object, record: InteractionRecord) -> None:
            marker = "%s" if backend == "postgresql" else "?"  # psycopg's, aiosqlite's
            cursor = await connection.execute(  # type: ignore[attr-defined]
                f"SELECT count(*) FROM interactions WHERE id = {marker}", (record.id,)
            )
            seen.append((record.id, (await cursor.fetchone())[0]))
            if record.id == "v1_refused":
                raise RuntimeError("the job could not be deferred")

        store.on_create = hook
        try:
            await store.create(_record("v1_kept"), _events(1, 1))
            with pytest.raises(RuntimeError):
                await store.create(_record("v1_refused"), _events(1, 1))
            assert seen == [("v1_kept", 1), ("v1_refused", 1)]
            assert await store.get("v1_kept") is not None
            assert await store.get("v1_refused") is None
            assert await store.read_events("v1_refused", 0, 10) == []
        finally:
            await store.close()

    if backend == "postgresql":
        with fresh_database() as url:
            asyncio.run(scenario(url))
    else:
        asyncio.run(scenario(f"sqlite:///{tmp_path / 'propylon.db'}"))


@pytest.mark.parametrize("backend", ["sqlalchemy-sqlite", "postgresql"])
def test_the_batch_hook_runs_in_the_creates_transaction(backend: str, tmp_path: Path) -> None:
    """The batch store's hook sees the batch's row on the driver's connection; its failure
    writes nothing (a batch is never stored without its job)."""

    async def scenario(url: str) -> None:
        stores = open_stores(url, tmp_path / "unused.db")
        await stores.store.open()
        seen: list[tuple[str, int]] = []

        async def hook(connection: object, batch: BatchRecord) -> None:
            marker = "%s" if backend == "postgresql" else "?"  # psycopg's, aiosqlite's
            cursor = await connection.execute(  # type: ignore[attr-defined]
                f"SELECT count(*) FROM batch_requests WHERE batch_id = {marker}", (batch.id,)
            )
            seen.append((batch.id, (await cursor.fetchone())[0]))
            if batch.id == "refused":
                raise RuntimeError("the job could not be deferred")

        stores.batches.on_batch_create = hook
        try:
            items = [BatchItem(0, {"contents": []}), BatchItem(1, {"contents": []})]
            await stores.batches.create_batch(_batch("kept", count=2), items)
            with pytest.raises(RuntimeError):
                await stores.batches.create_batch(_batch("refused", count=2), items)
            assert seen == [("kept", 2), ("refused", 2)]
            assert await stores.batches.get_batch("kept") is not None
            assert await stores.batches.get_batch("refused") is None
            assert await stores.batches.batch_items("refused") == []
        finally:
            await stores.store.close()

    if backend == "postgresql":
        with fresh_database() as url:
            asyncio.run(scenario(url))
    else:
        asyncio.run(scenario(f"sqlite:///{tmp_path / 'propylon.db'}"))


def test_connections_the_server_dropped_are_replaced(tmp_path: Path) -> None:
    """PostgreSQL only (SQLite has no server): after `pg_terminate_backend` of every pooled
    connection, the next reads and writes succeed on new ones, each exactly once."""
    import psycopg

    async def scenario(url: str) -> None:
        stores = open_stores(url, tmp_path / "unused.db")
        store = stores.store
        await store.open()
        try:
            # several pooled connections, all idle in the pool
            await asyncio.gather(*(store.create(_record(f"v1_{i}"), []) for i in range(4)))
            with psycopg.connect(url, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert ended is not None and ended[0] >= 1
            await store.create(_record("v1_after"), _events(1, 1))
            assert sorted(await store.unfinished()) == [*(f"v1_{i}" for i in range(4)), "v1_after"]
            assert [e.seq for e in await store.read_events("v1_after", 0, 10)] == [1]
        finally:
            await store.close()

    with fresh_database() as url:
        asyncio.run(scenario(url))
