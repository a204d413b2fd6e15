"""`GET /{v}/interactions`: Propylon's listing of interactions (service/listing.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.schema.listing import parse_list
from propylon.service.listing import ListingService

__all__ = ["routes"]


async def list_interactions(request: Request) -> Response:
    listing: ListingService = request.app.state.listing
    params = parse_list(request.query_params.multi_items())
    return JSONResponse(await listing.page(params, caller_of(request)))


# The same version segments and Vertex paths as the other Interactions routes.
routes = [
    Route(f"{base}/interactions", list_interactions, methods=["GET"])
    for base in ("/{version}", "/{version}/projects/{project}/locations/{location}")
]
