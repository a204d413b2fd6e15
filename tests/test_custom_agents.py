"""Custom agents on any model: the `agents` resource (create, list, get, delete: the shape of
google-genai's `_gaos/types/agents/agent.py`), per tenant, driven through the SDK's own
`client.agents`; `interactions.create(agent=id)` runs with the agent's system instruction and
tools on its base, a served model or a configured Google agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors
from google.genai import types

from tests.conftest import (
    Server,
    create_key,
    start_server,
    stop_server,
    wait_for,
)

GOOGLE_AGENT = "deep-research-preview-04-2026"
CONFIG = """
auth_cache_seconds = 0
allow_private_network_targets = true

[[models]]
name = "echo"
provider = "echo"
aliases = ["fast"]

[[models]]
name = "echo-other"
provider = "echo"
"""
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}

# the SDK warns once that its agents surface is experimental
pytestmark = pytest.mark.filterwarnings("ignore:Agents usage is experimental:UserWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("custom-agents")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    return {
        "a": create_key(data_dir, "--tenant", "acme")[1],
        "a2": create_key(data_dir, "--tenant", "acme", "--models", "echo")[1],
        "b": create_key(data_dir, "--tenant", "globex")[1],
    }


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: dict[str, str], replay: str) -> Iterator[Server]:
    agents = f'\n[[agents]]\nname = "{GOOGLE_AGENT}"\nbase_url = "{replay}"\n'
    running = start_server(data_dir, CONFIG + agents)
    yield running
    stop_server(running)


def _sdk(server: Server, key: str) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=server.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


@pytest.fixture(scope="module")
def a(server: Server, keys: dict[str, str]) -> genai.Client:
    return _sdk(server, keys["a"])


@pytest.fixture(scope="module")
def b(server: Server, keys: dict[str, str]) -> genai.Client:
    return _sdk(server, keys["b"])


def _post(server: Server, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1beta/agents", json=body, headers={"x-goog-api-key": key}, timeout=30
    )


def test_create_list_get_delete(a: genai.Client) -> None:
    made = a.agents.create(
        id="helper",
        base_agent="echo",
        system_instruction="you are terse",
        description="answers briefly",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert made.id == "helper" and made.base_agent == "echo"
    assert made.system_instruction == "you are terse" and made.description == "answers briefly"
    assert made.tools is not None and made.tools[0].name == "get_weather"  # type: ignore[union-attr]
    got = a.agents.get("helper")
    assert got.model_dump() == made.model_dump()
    assert "helper" in [x.id for x in a.agents.list().agents or []]
    assert a.agents.delete("helper") is not None
    with pytest.raises(errors.NotFoundError):
        a.agents.get("helper")
    with pytest.raises(errors.NotFoundError):
        a.agents.delete("helper")
    assert "helper" not in [x.id for x in a.agents.list().agents or []]


def test_list_pages_through_every_agent(a: genai.Client) -> None:
    names = [f"pager-{i}" for i in range(5)]
    for name in names:
        a.agents.create(id=name, base_agent="echo")
    seen: list[str] = []
    token = None
    while True:
        page = a.agents.list(page_size=2, page_token=token)
        assert len(page.agents or []) <= 2
        seen += [x.id for x in page.agents or [] if x.id]
        token = page.next_page_token
        if not token:
            break
    assert [n for n in seen if n in names] == names  # each once, ordered by id
    for name in names:
        a.agents.delete(name)


def test_an_interaction_on_an_agent_runs_with_its_system_instruction(
    server: Server, keys: dict[str, str], a: genai.Client
) -> None:
    a.agents.create(id="terse", base_agent="echo", system_instruction="you are terse")
    answer = a.interactions.create(agent="terse", input="hi")
    assert answer.status == "completed"
    assert answer.output_text == "system: you are terse\nuser: hi"
    got = a.interactions.get(answer.id)
    assert got.agent == "terse" and got.model is None  # the stored interaction echoes `agent`
    # the request's own system instruction comes after the agent's
    both = a.interactions.create(agent="terse", input="hi", system_instruction="and kind")
    assert both.output_text == "system: you are terse\n\nand kind\nuser: hi"
    # a next turn keeps the history, as for `model=`
    nxt = a.interactions.create(agent="terse", input="again", previous_interaction_id=answer.id)
    assert nxt.output_text.endswith(
        "user: hi\nmodel: system: you are terse\\nuser: hi\nuser: again"
    )
    # a background run re-plans from the store, with the agent's definition
    queued = a.interactions.create(agent="terse", input="later", background=True)
    wait_for(lambda: a.interactions.get(queued.id).status == "completed")
    assert a.interactions.get(queued.id).output_text == "system: you are terse\nuser: later"
    # the listing filters on the agent
    listed = httpx.get(
        f"{server.url}/v1beta/interactions",
        params={"agent": "terse", "page_size": 100},
        headers={"x-goog-api-key": keys["a"]},
    ).json()["interactions"]
    assert {i["id"] for i in listed} == {answer.id, both.id, nxt.id, queued.id}


def test_agent_tools_reach_the_model(a: genai.Client) -> None:
    a.agents.create(id="weather", base_agent="fast", tools=[WEATHER])  # type: ignore[list-item]
    answer = a.interactions.create(agent="weather", input='call get_weather {"city": "Oslo"}')
    assert answer.status == "requires_action"
    (call,) = [s for s in answer.steps if s.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == {"city": "Oslo"}  # type: ignore[union-attr]
    # a request may add tools of its own; one the agent declares already is refused
    extra = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    both = a.interactions.create(
        agent="weather",
        input='call lookup {}\ncall get_weather {"city": "Rome"}',
        tools=[extra],  # type: ignore[list-item]
    )
    assert [s.name for s in both.steps if s.type == "function_call"] == [  # type: ignore[union-attr]
        "lookup",
        "get_weather",
    ]
    with pytest.raises(errors.BadRequestError, match="get_weather"):
        a.interactions.create(agent="weather", input="x", tools=[WEATHER])  # type: ignore[list-item]


def test_agent_mcp_headers_are_used_and_never_read_back(
    server: Server, keys: dict[str, str], a: genai.Client, mcp_url: str
) -> None:
    calc = {
        "type": "mcp_server",
        "name": "calc",
        "url": mcp_url,
        "headers": {"x-test-token": "secret"},
    }
    made = _post(server, keys["a"], {"id": "calc", "base_agent": "echo", "tools": [calc]}).json()
    assert made["tools"][0]["headers"] == {"x-test-token": "[redacted]"}
    for read in (
        a.agents.get("calc").model_dump(),
        next(x for x in a.agents.list().agents or [] if x.id == "calc").model_dump(),
    ):
        assert "secret" not in str(read)
    # the store keeps them for the runs
    assert "secret" in str(server.query("SELECT * FROM agents WHERE id = 'calc'"))
    answer = a.interactions.create(agent="calc", input='call add {"a": 2, "b": 3}')
    assert answer.status == "completed", answer.errors
    assert [s.type for s in answer.steps][:2] == ["mcp_server_tool_call", "mcp_server_tool_result"]


def test_deleted_and_unknown_agents_answer_404(a: genai.Client) -> None:
    a.agents.create(id="short-lived", base_agent="echo")
    assert a.interactions.create(agent="short-lived", input="x").status == "completed"
    a.agents.delete("short-lived")
    with pytest.raises(errors.NotFoundError, match="short-lived"):
        a.interactions.create(agent="short-lived", input="x")
    with pytest.raises(errors.NotFoundError):
        a.interactions.create(agent="never-made", input="x")


def test_another_tenants_agent_answers_404(a: genai.Client, b: genai.Client) -> None:
    a.agents.create(id="private", base_agent="echo", system_instruction="acme only")
    with pytest.raises(errors.NotFoundError):
        b.agents.get("private")
    with pytest.raises(errors.NotFoundError):
        b.agents.delete("private")
    with pytest.raises(errors.NotFoundError):
        b.interactions.create(agent="private", input="x")
    assert "private" not in [x.id for x in b.agents.list().agents or []]
    # ids are per tenant: globex may have its own `private`
    b.agents.create(id="private", base_agent="echo", system_instruction="globex only")
    assert b.interactions.create(agent="private", input="x").output_text.startswith(
        "system: globex only"
    )
    assert a.agents.get("private").system_instruction == "acme only"


def test_an_agent_on_a_google_agent_is_passed_through(
    server: Server, keys: dict[str, str], a: genai.Client, replay: str
) -> None:
    a.agents.create(id="researcher", base_agent=GOOGLE_AGENT, system_instruction="cite sources")
    answer = a.interactions.create(
        agent="researcher", input="interactions/steps_text_stream.jsonl", background=True
    )
    wait_for(lambda: a.interactions.get(answer.id).status in ("completed", "failed"))
    got = a.interactions.get(answer.id)
    assert got.status == "completed" and got.agent == "researcher"
    forwarded = httpx.get(f"{replay}/requests").json()[-1]
    assert forwarded["agent"] == GOOGLE_AGENT
    assert forwarded["system_instruction"] == "cite sources"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"id": "x1"}, "base_agent"),
        ({"id": "x2", "base_agent": "no-such-model"}, "base_agent"),
        ({"id": "Bad Id!", "base_agent": "echo"}, "id"),
        ({"id": "x3", "base_agent": "echo", "tools": [{"type": "google_search"}]}, "tools"),
        (
            {"id": "x4", "base_agent": "echo", "agent_config": {"type": "antigravity"}},
            "agent_config",
        ),
        ({"id": "x5", "base_agent": "echo", "base_environment": "remote"}, "base_environment"),
        ({"id": "x6", "base_agent": "echo", "colour": "red"}, "colour"),
        ({"id": GOOGLE_AGENT, "base_agent": "echo"}, "id"),
        ({"id": "x7", "base_agent": "echo", "system_instruction": 3}, "system_instruction"),
    ],
)
def test_bad_agents_answer_400_naming_the_field(
    server: Server, keys: dict[str, str], body: dict[str, Any], named: str
) -> None:
    answer = _post(server, keys["a"], body)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]["message"]


def test_an_agent_id_is_taken_once_per_tenant(server: Server, keys: dict[str, str]) -> None:
    assert _post(server, keys["a"], {"id": "twice", "base_agent": "echo"}).status_code == 200
    again = _post(server, keys["a"], {"id": "twice", "base_agent": "echo-other"})
    assert again.status_code == 400 and "twice" in again.json()["error"]["message"]


def test_an_id_is_made_when_none_is_given(a: genai.Client) -> None:
    made = a.agents.create(base_agent="echo")
    assert made.id and a.agents.get(made.id).base_agent == "echo"


def test_a_keys_model_policy_covers_its_agents_bases(
    server: Server, keys: dict[str, str], a: genai.Client
) -> None:
    limited = _sdk(server, keys["a2"])  # may use `echo` only
    a.agents.create(id="on-other", base_agent="echo-other")
    with pytest.raises(errors.PermissionDeniedError):
        limited.interactions.create(agent="on-other", input="x")
    with pytest.raises(errors.PermissionDeniedError):
        limited.agents.create(id="mine-on-other", base_agent="echo-other")
    limited.agents.create(id="on-echo", base_agent="echo")
    assert limited.interactions.create(agent="on-echo", input="x").status == "completed"
