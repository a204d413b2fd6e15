"""Shared by the console tests: a server with an admin key and two tenants' keys, and
headless Chromium (Debian's, /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import types

from tests.conftest import API_KEY, CONFIG, Server, create_key, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Console:
    """A running server and the keys of its callers: `admin` (the `api_keys` setting),
    `acme` and `globex` (tenant keys made with `propylon keys create`)."""

    server: Server
    keys: dict[str, str]
    clients: dict[str, genai.Client] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: str) -> genai.Client:
        """The google-genai SDK with `who`'s key; kept, since a Client closes its HTTP client
        when it is collected (a temporary one could go while its call runs)."""
        if who not in self.clients:
            self.clients[who] = genai.Client(
                api_key=self.keys[who], http_options=types.HttpOptions(base_url=self.url)
            )
        return self.clients[who]

    def signed_in(self, who: str, **headers: str) -> httpx.Client:
        """An HTTP client holding a console session of `who`'s key (the sign-in posted with
        this server as its Origin, as the browser does)."""
        http = httpx.Client(base_url=self.url, timeout=30)
        answer = http.post(
            "/console/sign-in",
            data={"api_key": self.keys[who]},
            headers={"origin": self.url, **headers},
        )
        assert answer.status_code == 303, answer.text
        return http


def make_key(data_dir: Path, tenant: str, *extra: str) -> str:
    """A stored key of `tenant`, made by the CLI; returns its secret."""
    return create_key(data_dir, "--tenant", tenant, *extra)[1]


def serve_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A module's console server (use in a fixture: `yield from serve_console(...)`)."""
    data_dir = tmp_path_factory.mktemp("console")
    keys = {
        "admin": API_KEY,
        "acme": make_key(data_dir, "acme"),
        "globex": make_key(data_dir, "globex"),
    }
    running = start_server(data_dir, CONFIG)
    yield Console(running, keys)
    stop_server(running)


def require_chromium() -> None:
    """Fail (never skip) when Debian's Chromium is missing: .ci/run installs it."""
    assert CHROMIUM.exists(), (
        "the console's browser tests need Debian's Chromium: "
        "apt-get update && apt-get install -y chromium (.ci/run does)"
    )
