"""Run the Open Responses compliance suite (`bin/compliance-test.ts` of a checkout of the
openresponses repository) against a fresh Propylon serving the `echo` model.

Fetches nothing: the checkout, Node 20, and `tsx` and `zod` (3.x) resolvable from the checkout
(its `node_modules`, or one in a parent folder) are prerequisites. Usage:

    python scripts/openresponses_compliance.py /path/to/openresponses [--model echo]

Prints the suite's results and exits 0 when every test passed except the expected one, which
needs a model's own tool-calling decision (echo calls a tool only when told to).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# Tests that cannot pass on `echo` over HTTP, and why.
EXPECTED = {
    "tool-calling": "needs the model to decide on its own to call a tool",
}
KEY = "compliance-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(data_dir: Path, model: str) -> tuple[subprocess.Popen[bytes], str]:
    config = data_dir / "propylon.toml"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    config.write_text(
        f'api_keys = ["sha256:{digest}"]\n\n[[models]]\nname = "{model}"\nprovider = "echo"\n'
    )
    port = _free_port()
    command = [sys.executable, "-m", "propylon", "serve", "--port", str(port)]
    command += ["--config", str(config), "--data-dir", str(data_dir)]
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("propylon serve did not start")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of the openresponses repository")
    parser.add_argument("--model", default="echo")
    args = parser.parse_args()
    suite = args.checkout / "bin" / "compliance-test.ts"
    if not suite.exists():
        raise SystemExit(f"{suite} not found")
    with tempfile.TemporaryDirectory() as folder:
        process, url = _serve(Path(folder), args.model)
        try:
            env = {**os.environ, "NODE_OPTIONS": "--experimental-websocket"}
            command = ["npx", "--no-install", "tsx", str(suite), "--base-url", f"{url}/v1"]
            command += ["--api-key", KEY, "--model", args.model, "--json"]
            run = subprocess.run(
                command, cwd=args.checkout, env=env, capture_output=True, text=True
            )
        finally:
            process.terminate()
            process.wait(timeout=20)
    try:
        report = json.loads(run.stdout[run.stdout.index("{") :])
    except ValueError:
        sys.stderr.write(run.stdout + run.stderr)
        return 2
    unexpected = 0
    for result in report["results"]:
        test, status = result["id"], result["status"]
        why = EXPECTED.get(test)
        if status == "failed" and why is None:
            unexpected += 1
        note = f"  (expected: {why})" if status == "failed" and why else ""
        print(f"{status:7} {test}{note}")
        if status == "failed" and why is None:
            for error in result.get("errors") or []:
                print(f"          {error}")
    summary = report["summary"]
    print(f"{summary['passed']} passed, {summary['failed']} failed")
    print(f"unexpected failures: {unexpected}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
