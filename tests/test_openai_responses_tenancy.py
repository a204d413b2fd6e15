"""Responses under the same keys, tenants and policies as interactions, and in the same export:
against a real server whose keys are made with the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import Server, create_key, propylon_cli, start_server, stop_server

CONFIG = """
auth_cache_seconds = 0

[[models]]
name = "echo"
provider = "echo"

[[models]]
name = "other"
provider = "echo"
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("responses-tenancy")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    return {
        "acme": create_key(data_dir, "--tenant", "acme")[1],
        "globex": create_key(data_dir, "--tenant", "globex")[1],
        "echo-only": create_key(data_dir, "--tenant", "acme", "--models", "echo")[1],
        "broke": create_key(data_dir, "--tenant", "acme", "--budget-usd", "0")[1],
    }


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: dict[str, str]) -> Iterator[Server]:
    running = start_server(data_dir, CONFIG, log=data_dir / "server.log")
    yield running
    stop_server(running)


def _client(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_another_tenant_sees_nothing(server: Server, keys: dict[str, str]) -> None:
    acme, globex = _client(server, keys["acme"]), _client(server, keys["globex"])
    mine = acme.responses.create(model="echo", input="acme only")
    for attempt in (
        lambda: globex.responses.retrieve(mine.id),
        lambda: globex.responses.input_items.list(mine.id),
        lambda: globex.responses.cancel(mine.id),
        lambda: globex.responses.delete(mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    with pytest.raises(openai.BadRequestError) as chained:
        globex.responses.create(model="echo", input="x", previous_response_id=mine.id)
    assert chained.value.param == "previous_response_id"  # type: ignore[attr-defined]
    assert acme.responses.retrieve(mine.id).output_text == "user: acme only"


def test_a_keys_policy_holds(server: Server, keys: dict[str, str]) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        _client(server, keys["echo-only"]).responses.create(model="other", input="x")
    with pytest.raises(openai.RateLimitError) as broke:
        _client(server, keys["broke"]).responses.create(model="echo", input="x")
    assert broke.value.code == "insufficient_quota"


def test_a_response_is_exported_as_its_interaction(
    server: Server, keys: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    made = _client(server, keys["acme"]).responses.create(
        model="echo", input="export me", metadata={"job": "nightly"}
    )
    dump = tmp_path / "acme.jsonl"
    propylon_cli(data_dir, "export", "--tenant", "acme", "--output", str(dump))
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    [exported] = [line for line in lines if line["record"]["id"] == made.id]
    assert exported["record"]["request"]["labels"] == {"job": "nightly"}
    kinds = [kind for _, kind, _ in exported["events"]]
    assert kinds[0] == "interaction.created" and kinds[-1] == "interaction.completed"
