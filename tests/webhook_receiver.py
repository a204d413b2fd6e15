"""A webhook receiver for the tests, on loopback. `POST /hook/<name>` records the delivery
(headers and raw body) and answers 200, or 500 while `<name>` is set failing with
`POST /mode/<name>` `{"fail": true}`. `GET /received/<name>` lists what arrived, failed
attempts included (`"answered": 500`).

    python tests/webhook_receiver.py PORT
"""

from __future__ import annotations

import sys
from collections import defaultdict

from aiohttp import web

received: dict[str, list[dict[str, object]]] = defaultdict(list)
failing: set[str] = set()


async def hook(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    status = 500 if name in failing else 200
    received[name].append(
        {
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode(),
            "answered": status,
        }
    )
    return web.Response(status=status)


async def mode(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if (await request.json())["fail"]:
        failing.add(name)
    else:
        failing.discard(name)
    return web.json_response({})


async def listing(request: web.Request) -> web.Response:
    return web.json_response(received[request.match_info["name"]])


app = web.Application()
app.add_routes(
    [
        web.post("/hook/{name}", hook),
        web.post("/mode/{name}", mode),
        web.get("/received/{name}", listing),
    ]
)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
