"""HTTP endpoints of the agents resource: `POST` and `GET /{v}/agents`, `GET` and
`DELETE /{v}/agents/{id}` (service/agents.py)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.errors import InvalidArgument
from propylon.schema.agents import parse_agent, parse_list_agents
from propylon.service.agents import AgentService

__all__ = ["routes"]


def _service(request: Request) -> AgentService:
    service: AgentService = request.app.state.agents
    return service


async def create(request: Request) -> Response:
    try:
        body: Any = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"malformed JSON body: {exc}") from None
    return JSONResponse(await _service(request).create(parse_agent(body), caller_of(request)))


async def list_agents(request: Request) -> Response:
    params = parse_list_agents(request.query_params.multi_items())
    return JSONResponse(await _service(request).page(params, caller_of(request)))


async def get(request: Request) -> Response:
    agent_id = request.path_params["agent_id"]
    return JSONResponse(await _service(request).get(agent_id, caller_of(request)))


async def delete(request: Request) -> Response:
    await _service(request).delete(request.path_params["agent_id"], caller_of(request))
    return JSONResponse({})


def _routes(base: str) -> list[Route]:
    return [
        Route(f"{base}/agents", create, methods=["POST"]),
        Route(f"{base}/agents", list_agents, methods=["GET"]),
        Route(f"{base}/agents/{{agent_id}}", get, methods=["GET"]),
        Route(f"{base}/agents/{{agent_id}}", delete, methods=["DELETE"]),
    ]


# The same version segments and Vertex paths as the Interactions routes.
routes = _routes("/{version}") + _routes("/{version}/projects/{project}/locations/{location}")
