"""The composition root: `create_app(settings)` wires store, bus, models and HTTP. No globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from propylon.api import interactions
from propylon.api.auth import KeyChecker
from propylon.api.errors import EXCEPTION_HANDLERS, JSONResponse
from propylon.bus.memory import MemoryBus
from propylon.config import Settings
from propylon.gateway.registry import ModelRegistry
from propylon.service.interactions import InteractionService
from propylon.store.sqlite import SQLiteStore

__all__ = ["create_app"]

logger = logging.getLogger("propylon")


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings, models: ModelRegistry | None = None) -> Starlette:
    """The ASGI app for `settings`. `models` defaults to the registry the settings describe.

    Raises ValueError when the model settings are inconsistent (for example a name used twice).
    """
    models = models or ModelRegistry.from_settings(settings)
    store = SQLiteStore(settings.database_path)
    service = InteractionService(store, MemoryBus(settings.stream_buffer_events), models, settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        closed = await service.recover()
        if closed:
            logger.warning("closed %d interactions interrupted by the last stop as failed", closed)
        try:
            yield
        finally:
            await service.shutdown()
            await models.close()
            await store.close()

    routes: list[BaseRoute] = [Route("/healthz", _healthz), *interactions.routes]
    if settings.path_prefix:
        routes.append(Mount(settings.path_prefix.rstrip("/"), routes=list(interactions.routes)))
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.settings = settings
    app.state.service = service
    app.state.models = models
    app.state.keys = KeyChecker(settings.api_keys)
    return app
