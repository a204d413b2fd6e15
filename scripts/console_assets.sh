#!/usr/bin/env bash
# Vendors the console's browser libraries from npm into the Python package, where they are
# served as static files (no build server, no CDN at run time). Versions are pinned in
# package.json / package-lock.json; run this after changing them and commit the copies.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
static=src/propylon/api/console/static
cp node_modules/htmx.org/dist/htmx.min.js "$static/htmx.min.js"
cp node_modules/chart.js/dist/chart.umd.min.js "$static/chart.umd.min.js"
cp node_modules/@picocss/pico/css/pico.min.css "$static/pico.min.css"
