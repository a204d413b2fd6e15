"""The data-dir lock: one server per data dir. A second one refuses to start, naming the first
one's PID, and leaves the first one's runs alone; the CLI's store commands still work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import CONFIG, free_port, start_server, stop_server, wait_for

WORDS = " ".join(f"word{n:03d}" for n in range(25))  # echo-idle answers it in about 8 s


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_second_server_on_the_same_data_dir_refuses_to_start(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    first = start_server(data, CONFIG)
    try:
        client = first.client()
        running = client.interactions.create(model="echo-idle", input=WORDS, background=True)
        stream = client.interactions.get(running.id, stream=True)
        next(e for e in stream if e.event_type == "step.delta")  # its answer has begun
        stream.close()

        port = free_port()
        log = tmp_path / "second.log"
        with log.open("wb") as sink:
            second = subprocess.Popen(
                [
                    *(sys.executable, "-m", "propylon", "serve", "--port", str(port)),
                    *("--config", str(data / "propylon.toml"), "--data-dir", str(data)),
                ],
                stderr=sink,
            )
        try:
            wait_for(lambda: second.poll() is not None or _answers(f"http://127.0.0.1:{port}"), 60)
            assert second.poll() is not None, "the second server started"
        finally:
            if second.poll() is None:
                second.kill()
            second.wait(timeout=20)
        assert second.returncode != 0
        said = log.read_text()
        assert f"PID {first.process.pid}" in said and str(data.resolve()) in said

        # the first server's run was left alone and completes
        wait_for(lambda: client.interactions.get(running.id).status != "in_progress", 60)
        done = client.interactions.get(running.id)
        assert done.status == "completed", done.errors
        assert WORDS in done.output_text

        # the store commands of the CLI share the file with the running server
        listed = subprocess.run(
            [sys.executable, "-m", "propylon", "keys", "list", "--data-dir", str(data)],
            capture_output=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
    finally:
        stop_server(first)

    # once the first server stopped, the data dir is free again
    again = start_server(data, CONFIG)
    stop_server(again)
