"""The composition root: `create_app(settings)` wires store, bus, models and HTTP. No globals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from propylon.api import agents as agent_routes
from propylon.api import files as file_routes
from propylon.api import gemini as gemini_routes
from propylon.api import interactions, openapi
from propylon.api import listing as listing_routes
from propylon.api import models as model_routes
from propylon.api import webhooks as webhook_routes
from propylon.api.auth import Authenticator, AuthMiddleware
from propylon.api.console import Console
from propylon.api.errors import EXCEPTION_HANDLERS, JSONResponse
from propylon.api.limits import BodyLimitMiddleware
from propylon.api.openai import chat as openai_chat
from propylon.api.openai import embeddings as openai_embeddings
from propylon.api.openai import responses as openai_responses
from propylon.config import Settings
from propylon.gateway.registry import ModelRegistry
from propylon.observability import Metrics, MetricsMiddleware
from propylon.runtime import build_runtime
from propylon.service.agents import AgentService
from propylon.service.listing import ListingService
from propylon.service.responses import ResponseService
from propylon.service.retention import purge_expired
from propylon.store.base import Store

__all__ = ["create_app"]

logger = logging.getLogger("propylon")


async def _healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """Readiness: the store answers a read (503 while it does not)."""
    store: Store = request.app.state.store
    try:
        await store.count_api_keys()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, 503)
    return JSONResponse({"status": "ready"})


async def _metrics(request: Request) -> Response:
    """Prometheus exposition of the app's own registry."""
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _vertex(route: BaseRoute) -> bool:
    """A Vertex variant (`/{version}/projects/{project}/locations/{location}/...`)."""
    return "/projects/{project}/locations/{location}" in getattr(route, "path", "")


def create_app(settings: Settings, models: ModelRegistry | None = None) -> Starlette:
    """The ASGI app for `settings`. `models` defaults to the registry the settings describe.

    Raises ValueError when the model settings are inconsistent (for example a name used twice).
    """
    models = models or ModelRegistry.from_settings(settings)
    runtime = build_runtime(settings, models, "serve")
    stores, service, metrics = runtime.stores, runtime.service, runtime.metrics
    store, ledger, custom_agents = stores.store, stores.ledger, stores.agents
    webhooks, worker, agents = runtime.webhooks, runtime.deliveries, runtime.agents
    distributed = runtime.jobs is not None
    stateless, batches = runtime.stateless, runtime.batches
    metrics.queue_depth.set_function(service.jobs.waiting)
    metrics.watch_model_processes(lambda: service.models.model_processes())

    def reload_models() -> None:
        """SIGHUP: re-read the config file's models, retry and breaker settings and route new
        interactions by them; runs under way finish on the old targets."""
        try:
            fresh = Settings.load(settings.config_file)
            current = settings.model_copy(
                update={"models": fresh.models, "retry": fresh.retry, "breaker": fresh.breaker}
            )
            registry = ModelRegistry.from_settings(current, previous=service.models)
        except Exception as exc:  # a bad edit must not take the server down
            logger.error("config reload failed, keeping the current models: %s", exc)
            return
        runtime.retire(service.models)
        service.models = stateless.models = app.state.models = registry
        logger.warning("config reloaded: serving %s", ", ".join(m.name for m in registry.models))

    async def purge_loop() -> None:
        while True:
            with contextlib.suppress(Exception):
                removed = await purge_expired(store, settings, ledger, stores.caches)
                if removed:
                    logger.info("purged %d expired interactions", removed)
            with contextlib.suppress(Exception):
                files = await runtime.files.purge()
                if files:
                    logger.info("purged %d expired files", files)
            await asyncio.sleep(settings.purge_interval_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.open()
        await auth.start()  # keys required or not: decided here, from settings and store
        if not distributed:  # else workers deliver (jobs/worker.py)
            worker.start()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError):  # only the main thread has signals
            loop.add_signal_handler(signal.SIGHUP, reload_models)
        # Several processes: what a dead one left is the reconciler's (jobs/reconciler.py),
        # never closed here: another process may be running it.
        requeued, closed = (0, 0) if distributed else await service.recover()
        if requeued or closed:
            logger.warning(
                "recovered the runs the last stop interrupted: %d re-queued, %d closed as failed",
                requeued,
                closed,
            )
        if not distributed and await batches.recover():
            logger.warning("re-queued the batches the last stop interrupted")
        purger = asyncio.create_task(purge_loop())
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
            await service.shutdown()
            await batches.stop()
            await worker.stop()
            await runtime.close()

    # Starlette tries routes in order (~0.6 us each): the busiest surfaces first, the Vertex
    # variants last (no path matches two of these routes, so order only decides the cost).
    api = [
        *interactions.routes,
        *openai_chat.routes,
        *gemini_routes.routes,
        *openai_responses.routes,
        *openai_embeddings.routes,
        *model_routes.routes,  # `/v1/models` is two surfaces': dispatched on the key header
        *listing_routes.routes,
        *agent_routes.routes,
        *webhook_routes.routes,
        *file_routes.routes,
    ]
    api.sort(key=_vertex)
    routes: list[BaseRoute] = [
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
        Route("/openapi.json", openapi.serve),
        *api,
    ]
    if settings.path_prefix:
        routes.append(Mount(settings.path_prefix.rstrip("/"), routes=api))
    auth = Authenticator(settings.api_keys, store, settings.auth_cache_seconds)
    console = Console.build(settings, auth, store, stores.console) if settings.console else None
    # first: the API's `/{version}/interactions` would match `/console/interactions` too
    routes[:0] = console.routes if console else Console.closed(settings)
    # Every route but these is authenticated once, in the middleware, before routing.
    open_paths = {"/healthz", "/openapi.json"}  # liveness; the API's description, no data
    if settings.metrics_public:
        open_paths |= {"/metrics", "/readyz"}
    app = Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(
                AuthMiddleware,
                auth=auth,
                open_paths=frozenset(open_paths),
                sessions=console.sessions if console else None,
                keyless=file_routes.keyless,
            ),
            Middleware(
                BodyLimitMiddleware,
                max_bytes=settings.max_request_bytes,
                exempt=file_routes.unbounded,
            ),
        ],
    )
    # No 307 from `/x/` to `/x`: a path with an empty id is a 404 like any unknown path.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.store = store
    app.state.service = service
    app.state.stateless = stateless
    app.state.responses = ResponseService(service)
    app.state.listing = ListingService(stores.listing, store)
    app.state.agents = AgentService(custom_agents, store, lambda: service.models, settings, agents)
    app.state.webhooks = webhooks
    # generateContent & co.: stateless, under the same registry, quotas and ledger
    app.state.generate = runtime.generate
    app.state.caches = runtime.generate.caches
    app.state.batches = batches
    app.state.files = runtime.files
    app.state.models = models
    app.state.metrics = metrics
    app.state.auth = auth
    app.state.console = console
    return app
