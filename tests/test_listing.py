"""Listing interactions (`GET /{v}/interactions`, Propylon's extension: Google has none):
newest first, the caller's tenant only, filters, keyset pages, and 400s that name the
parameter. google-genai 3.4.0 has no list method (`client.interactions` offers create, get,
cancel and delete, and its raw-response accessor only those), so the listing is read with
httpx; the interactions are made with the SDK."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from google import genai
from google.genai import types

from propylon.store.listing import ListQuery
from propylon.store.migrate import sync_url
from propylon.store.queries import listing_sql
from tests.conftest import Server, create_key, start_server, stop_server, wait_for

CONFIG = """
auth_cache_seconds = 0
allow_private_network_targets = true

[[models]]
name = "echo"
provider = "echo"
aliases = ["fast"]

[[models]]
name = "echo-slow"
provider = "echo"
options = { delay = 0.02 }
"""

KEYS = {
    "pager": ("--tenant", "pager"),
    "acme": ("--tenant", "acme"),
    "globex": ("--tenant", "globex"),
    "admin": ("--tenant", "ops", "--admin"),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("listing")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    return {name: create_key(data_dir, *args)[1] for name, args in KEYS.items()}


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: dict[str, str]) -> Iterator[Server]:
    running = start_server(data_dir, CONFIG)
    yield running
    stop_server(running)


def _sdk(server: Server, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.url))


def _list(
    server: Server, key: str, path: str = "/v1beta/interactions", **params: Any
) -> httpx.Response:
    return httpx.get(server.url + path, params=params, headers={"x-goog-api-key": key}, timeout=30)


def _page(server: Server, key: str, **params: Any) -> dict[str, Any]:
    answer = _list(server, key, **params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def _all(server: Server, key: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, followed through `next_page_token`."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = _page(server, key, **params, **({"page_token": token} if token else {}))
        found += page["interactions"]
        token = page.get("next_page_token")
        if not token:
            return found


def test_paging_through_45_returns_each_once_newest_first(
    server: Server, keys: dict[str, str]
) -> None:
    client = _sdk(server, keys["pager"])
    made = [client.interactions.create(model="echo", input=f"n{i}").id for i in range(45)]
    sizes, seen, token = [], [], None
    while True:
        page = _page(
            server, keys["pager"], page_size=10, **({"page_token": token} if token else {})
        )
        sizes.append(len(page["interactions"]))
        seen += page["interactions"]
        token = page.get("next_page_token")
        if not token:
            break
    assert sizes == [10, 10, 10, 10, 5]
    assert sorted(i["id"] for i in seen) == sorted(made)  # each exactly once
    keys_seen = [(i["created"], i["id"]) for i in seen]
    assert keys_seen == sorted(keys_seen, reverse=True)  # newest first, one fixed order
    assert len(set(keys_seen)) == 45
    assert all("steps" not in i and i["status"] == "completed" for i in seen)
    assert seen[0]["object"] == "interaction" and seen[0]["model"] == "echo"
    assert "usage" in seen[0]
    # the default page holds 20
    assert len(_page(server, keys["pager"])["interactions"]) == 20


def test_another_tenants_interactions_are_never_listed(
    server: Server, keys: dict[str, str]
) -> None:
    acme_client, globex_client = _sdk(server, keys["acme"]), _sdk(server, keys["globex"])
    mine = acme_client.interactions.create(model="echo", input="acme secret")
    theirs = globex_client.interactions.create(model="echo", input="globex")
    globex = [i["id"] for i in _all(server, keys["globex"], page_size=100)]
    assert theirs.id in globex and mine.id not in globex
    acme = [i["id"] for i in _all(server, keys["acme"], page_size=100)]
    assert mine.id in acme and theirs.id not in acme
    # admin keys see every tenant's, or one tenant's with `tenant=`
    everyone = [i["id"] for i in _all(server, keys["admin"], page_size=100)]
    assert {mine.id, theirs.id} <= set(everyone)
    only_acme = [i["id"] for i in _all(server, keys["admin"], tenant="acme", page_size=100)]
    assert mine.id in only_acme and theirs.id not in only_acme
    # a tenant key may not ask for another tenant's; naming its own is fine
    refused = _list(server, keys["globex"], tenant="acme")
    assert refused.status_code == 403 and "tenant" in refused.json()["error"]["message"]
    assert theirs.id in [
        i["id"] for i in _page(server, keys["globex"], tenant="globex")["interactions"]
    ]
    # a page token made for one tenant's listing does not page through another's
    token = _page(server, keys["admin"], page_size=1)["next_page_token"]
    assert _list(server, keys["acme"], page_token=token, page_size=1).status_code == 400


def test_filters_by_labels_status_model_and_created_range(
    server: Server, keys: dict[str, str]
) -> None:
    client = _sdk(server, keys["acme"])
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    red = client.interactions.create(model="echo", input="a", labels={"team": "red", "env": "ci"})
    blue = client.interactions.create(model="fast", input="b", labels={"team": "blue"})
    asking = client.interactions.create(
        model="echo",
        input="call lookup {}",
        tools=[tool],
        labels={"team": "red"},  # type: ignore[list-item]
    )
    assert asking.status == "requires_action"
    ids = {red.id, blue.id, asking.id}

    def listed(**params: Any) -> set[str]:
        return {i["id"] for i in _all(server, keys["acme"], page_size=100, **params)} & ids

    assert listed(label="team:red") == {red.id, asking.id}
    assert listed(label=["team:red", "env:ci"]) == {red.id}  # repeated: all must match
    assert listed(label="env") == {red.id}  # a key alone: the label is set
    assert listed(label="team:green") == set()
    assert listed(status="requires_action") == {asking.id}
    assert listed(status=["requires_action", "completed"]) == ids
    assert listed(model="fast") == {blue.id}  # the name as the request gave it
    assert listed(model="echo", label="team:red") == {red.id, asking.id}
    assert red.created is not None
    created = datetime.fromisoformat(red.created)
    before, after = created - timedelta(seconds=1), created + timedelta(seconds=1)
    assert red.id in listed(created_after=before.isoformat(), created_before=after.isoformat())
    assert red.id not in listed(created_after=after.isoformat())
    assert red.id not in listed(created_before=before.isoformat())
    assert red.id not in listed(created_after=red.created)  # both bounds are exclusive
    assert red.id not in listed(created_before=red.created)
    # an offset is converted to UTC
    assert red.id in listed(
        created_after=before.astimezone(timezone(timedelta(hours=2))).isoformat()
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page_size": ["1", "2"]}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"status": "done"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-01-01T00:00:00"}, "created_before"),  # no offset
        ({"label": "Team:red"}, "label"),
        ({"label": ":red"}, "label"),
        ({"view": "everything"}, "view"),
        ({"labels.team": "red"}, "labels.team"),  # an unknown parameter is refused
    ],
)
def test_bad_parameters_answer_400_naming_them(
    server: Server, keys: dict[str, str], params: dict[str, Any], named: str
) -> None:
    answer = _list(server, keys["acme"], **params)
    assert answer.status_code == 400, answer.text
    assert f"`{named}`" in answer.json()["error"]["message"]


def test_a_page_token_belongs_to_its_filters(server: Server, keys: dict[str, str]) -> None:
    client = _sdk(server, keys["acme"])
    for _ in range(2):
        client.interactions.create(model="echo", input="t", labels={"team": "tok"})
    token = _page(server, keys["acme"], page_size=1, label="team:tok")["next_page_token"]
    assert _page(server, keys["acme"], page_size=1, label="team:tok", page_token=token)[
        "interactions"
    ]
    other = _list(server, keys["acme"], page_size=1, label="team:red", page_token=token)
    assert other.status_code == 400 and "`page_token`" in other.json()["error"]["message"]


def test_view_full_includes_the_steps_as_get_does(server: Server, keys: dict[str, str]) -> None:
    client = _sdk(server, keys["acme"])
    made = client.interactions.create(model="echo", input="full view", labels={"team": "full"})
    page = _page(server, keys["acme"], view="full", label="team:full")
    (listed,) = page["interactions"]
    assert [s["type"] for s in listed["steps"]] == ["user_input", "model_output"]
    got = httpx.get(
        f"{server.url}/v1beta/interactions/{made.id}",
        headers={"x-goog-api-key": keys["acme"]},
    ).json()
    assert listed == got
    basic = _page(server, keys["acme"], view="basic", label="team:full")["interactions"][0]
    assert "steps" not in basic and basic == {k: v for k, v in got.items() if k != "steps"}


def test_listed_requests_are_redacted(server: Server, keys: dict[str, str]) -> None:
    client = _sdk(server, keys["acme"])
    tool = {
        "type": "mcp_server",
        "name": "calc",
        "url": "http://127.0.0.1:9/mcp",  # nobody listens: the run fails, the row stays
        "headers": {"authorization": "Bearer sk-very-secret"},
    }
    made = client.interactions.create(
        model="echo",
        input="x",
        tools=[tool],
        labels={"team": "mcp"},
        background=True,  # type: ignore[list-item]
    )
    wait_for(lambda: client.interactions.get(made.id).status not in ("in_progress", "queued"))
    for view in ("basic", "full"):
        (listed,) = _page(server, keys["acme"], view=view, label="team:mcp")["interactions"]
        assert listed["tools"][0]["headers"] == {"authorization": "[redacted]"}
        assert "sk-very-secret" not in str(listed)


def test_other_version_segments_and_vertex_paths_list_too(
    server: Server, keys: dict[str, str]
) -> None:
    client = _sdk(server, keys["globex"])  # kept: a dropped Client closes its connections
    made = client.interactions.create(model="echo", input="vertex")
    for path in ("/v1/interactions", "/v1beta1/projects/p/locations/l/interactions"):
        assert made.id in [i["id"] for i in _page_at(server, keys["globex"], path)]


def _page_at(server: Server, key: str, path: str) -> list[dict[str, Any]]:
    answer = _list(server, key, path, page_size=100)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["interactions"]
    return found


def test_the_listing_is_served_by_an_index(server: Server) -> None:
    """The query of a tenant's page after a page token walks an index in order: no sort of
    the table, whatever its size (the store's own SQL, explained by its database)."""
    query = ListQuery(tenant="acme", limit=11, after=("2026-01-01T00:00:00Z", "v1_x"))
    if server.database_url is None:
        sql, params = listing_sql(query, sqlite=True)
        with sqlite3.connect(server.database) as conn:
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in rows)
        assert "INDEX interactions_tenant_created_id" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        return
    # PostgreSQL: the planner would scan a table this small; asked not to, it must not sort
    engine = sqlalchemy.create_engine(sync_url(server.database_url))
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SET enable_seqscan = off"))
            named_sql, named = listing_sql(query, sqlite=False)
            rows = conn.execute(sqlalchemy.text(f"EXPLAIN {named_sql}"), named)
            plan = " ".join(str(row[0]) for row in rows)
    finally:
        engine.dispose()
    assert "interactions_tenant_created_id" in plan, plan
    assert "Sort" not in plan, plan


def test_a_running_interaction_is_listed_as_get_shows_it(
    server: Server, keys: dict[str, str]
) -> None:
    """While a run goes on, `view=full` shows the output so far (the log's projection), not
    the row's last stored snapshot."""
    client = _sdk(server, keys["acme"])
    made = client.interactions.create(
        model="echo-slow", input="word " * 400, labels={"team": "live"}, background=True
    )

    def running_with_output() -> bool:
        (listed,) = _page(server, keys["acme"], view="full", label="team:live")["interactions"]
        kinds = [s["type"] for s in listed["steps"]]
        return listed["status"] == "in_progress" and "model_output" in kinds

    wait_for(running_with_output)
    wait_for(lambda: client.interactions.get(made.id).status == "completed")
    (done,) = _page(server, keys["acme"], view="full", label="team:live")["interactions"]
    assert done["status"] == "completed" and done["steps"][-1]["type"] == "model_output"
