"""google-genai 2.x (2.34.0: what google-adk 2.13 installs) against the real server: it parses
the Interactions error body as its own typed error, with nothing logged about a parse failure.
It runs in its own venv, `.venvs/genai2` (its pins clash with the test extra's 3.4.0), which
.ci/run makes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY, Server

GENAI2 = Path(__file__).resolve().parent.parent / ".venvs" / "genai2" / "bin" / "python"
MAKE = "python3 -m venv .venvs/genai2 && .venvs/genai2/bin/pip install google-genai==2.34.0"

EXPECTED = {  # name -> (HTTP status, exception class, code, what the message names)
    "unknown-previous": (404, "NotFoundError", "not_found", "v1_missing"),
    "store-false-background": (400, "BadRequestError", "invalid_request", "store=true"),
    "unknown-id": (404, "NotFoundError", "not_found", "v1_missing"),
}


@pytest.fixture(scope="module")
def outcome(server: Server) -> tuple[list[dict[str, Any]], str]:
    if not GENAI2.exists():
        pytest.fail(f"{GENAI2} is missing: make it with `{MAKE}` (or run .ci/run)")
    script = Path(__file__).with_name("genai2_errors.py")
    ran = subprocess.run(
        [str(GENAI2), str(script), server.url, API_KEY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return [json.loads(line) for line in ran.stdout.splitlines()], ran.stderr


def test_the_2x_sdk_is_the_one_adk_installs(outcome: tuple[list[dict[str, Any]], str]) -> None:
    results, _ = outcome
    assert {r["version"] for r in results} == {"2.34.0"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_errors_parse_as_the_sdks_own_type(
    outcome: tuple[list[dict[str, Any]], str], name: str
) -> None:
    results, _ = outcome
    result = next(r for r in results if r["name"] == name)
    http_status, exception, code, mentions = EXPECTED[name]
    assert result["classes"][:2] == [exception, "APIStatusError"]
    assert "APIError" in result["classes"]
    assert result["status_code"] == http_status
    message = result["body"]["error"]["message"]
    assert result["body"] == {"error": {"code": code, "message": message}}
    assert mentions in message
    # parsed as `_gaos/types/interactions/error.py`, not through a failed parse
    assert result["typed"] == {"code": code, "message": message}
    assert not any("ValidationError" in link or "did not match" in link for link in result["chain"])


def test_nothing_is_logged_about_parsing(outcome: tuple[list[dict[str, Any]], str]) -> None:
    _, stderr = outcome
    for sign in ("Traceback", "ValidationError", "did not match", "validation error"):
        assert sign not in stderr, stderr
