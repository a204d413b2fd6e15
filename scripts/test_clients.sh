#!/usr/bin/env bash
# What the test suite needs beside the `test` extra: the clients whose pins clash with it, each
# in a venv of its own under .venvs/ (tests/clients/requirements-NAME.txt), and Debian's
# Chromium for the console's browser tests (Playwright drives it; no browser download).
# Idempotent: a venv already made from the same requirements is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

for requirements in tests/clients/requirements-*.txt; do
    name="$(basename "$requirements" .txt)"
    name="${name#requirements-}"
    venv=".venvs/$name"
    if [ -f "$venv/.requirements" ] && cmp -s "$requirements" "$venv/.requirements"; then
        continue
    fi
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet -r "$requirements"
    cp "$requirements" "$venv/.requirements"
done
