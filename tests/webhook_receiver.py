"""A webhook receiver for the tests, on loopback (127.0.0.1 and 127.0.0.2, so that a test can
allow one loopback address and refuse the other). `POST /hook/<name>` records the delivery
(headers and raw body) and answers 200, or 500 while `<name>` is set failing with
`POST /mode/<name>` `{"fail": true}`. `POST /redirect/<name>?to=URL` records the delivery and
answers `302 Location: URL`. `GET /received/<name>` lists what arrived, failed attempts
included (`"answered": 500`).

    python tests/webhook_receiver.py PORT
"""

from __future__ import annotations

import sys
from collections import defaultdict

from aiohttp import web

received: dict[str, list[dict[str, object]]] = defaultdict(list)
failing: set[str] = set()


async def _record(request: web.Request, status: int) -> None:
    received[request.match_info["name"]].append(
        {
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode(),
            "answered": status,
            "host": request.host,
            "query": request.query_string,
        }
    )


async def hook(request: web.Request) -> web.Response:
    status = 500 if request.match_info["name"] in failing else 200
    await _record(request, status)
    return web.Response(status=status)


async def redirect(request: web.Request) -> web.Response:
    await _record(request, 302)
    return web.Response(status=302, headers={"location": request.query["to"]})


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
        web.get("/hook/{name}", hook),  # a followed 302 turns the POST into a GET
        web.post("/redirect/{name}", redirect),
        web.get("/redirect/{name}", redirect),
        web.post("/mode/{name}", mode),
        web.get("/received/{name}", listing),
    ]
)

if __name__ == "__main__":
    web.run_app(app, host=["127.0.0.1", "127.0.0.2"], port=int(sys.argv[1]), print=None)
