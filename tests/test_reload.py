"""What an alias means is configuration: edit the file, send SIGHUP, new interactions follow."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from google.genai import _interactions as errors

from tests.conftest import CONFIG, start_server, stop_server


def test_sighup_reloads_the_models(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", CONFIG)
    client = server.client()
    try:
        assert client.interactions.create(model="fast", input="a").output_text == "user: a"
        config = server.data_dir / "propylon.toml"
        config.write_text(CONFIG.replace('aliases = ["fast"]', 'aliases = ["quick"]'))
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:  # wait for the reload to take effect
            try:
                answer = client.interactions.create(model="quick", input="b")
                break
            except errors.NotFoundError:
                assert time.monotonic() < deadline, "the reload did not happen"
                time.sleep(0.05)
        assert answer.output_text == "user: b"
        with pytest.raises(errors.NotFoundError):
            client.interactions.create(model="fast", input="c")
        # a broken edit keeps the server serving what it served
        config.write_text("models = 'not a list'\n")
        server.process.send_signal(signal.SIGHUP)
        assert client.interactions.create(model="quick", input="d").output_text == "user: d"
        assert server.process.poll() is None
    finally:
        stop_server(server)
