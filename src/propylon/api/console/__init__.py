"""The operator console: server-rendered pages (Jinja2 templates, htmx, Chart.js; the
browser libraries vendored as static files by scripts/console_assets.sh) served by the same
process at `/console` (and `<path_prefix>/console`), a client of the same services as the API.

`Console.build` makes its routes, its sessions (for AuthMiddleware: console paths are
authenticated by the session cookie, no other path ever is) and its read-only store queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from propylon.api.auth import Authenticator
from propylon.api.console import interactions, keys, usage
from propylon.api.console.render import base_of, error_page, render
from propylon.api.console.session import ConsoleSessions, check_same_origin, console_secret
from propylon.config import Settings
from propylon.domain.caller import Caller
from propylon.errors import PropylonError
from propylon.service.keys import KeyService
from propylon.store.base import KeyStore
from propylon.store.console import ConsoleReads

__all__ = ["Console"]

_STATIC = Path(__file__).with_name("static")


async def _home(request: Request) -> Response:
    return RedirectResponse(request.url.path.rstrip("/") + "/interactions", 303)


async def _sign_in(request: Request) -> Response:
    """GET: the sign-in form. POST: check the key, set the session cookie, go to the table."""
    sessions: ConsoleSessions = request.app.state.console.sessions
    base = base_of(request)
    signed_in = request.scope.get("state", {}).get("caller")
    if request.method == "GET":
        if isinstance(signed_in, Caller):
            return RedirectResponse(f"{base}/interactions", 303)
        return render(request, "sign_in.html", {})
    try:
        check_same_origin(request)
    except PropylonError as exc:
        return error_page(request, exc, None)
    form = await request.form()
    found = await sessions.sign_in(str(form.get("api_key") or "").strip())
    if found is None:
        return render(request, "sign_in.html", {"error": "That API key is not valid."}, 401)
    response = RedirectResponse(f"{base}/interactions", 303)
    sessions.set_cookie(request, response, found[1], base)
    return response


async def _sign_out(request: Request) -> Response:
    """End the session: the cookie is cleared (same-origin POSTs only)."""
    sessions: ConsoleSessions = request.app.state.console.sessions
    try:
        check_same_origin(request)
    except PropylonError as exc:
        return error_page(request, exc, None)
    response = RedirectResponse(f"{base_of(request)}/sign-in", 303)
    sessions.set_cookie(request, response, "", base_of(request))
    return response


_ROUTES: list[BaseRoute] = [
    Route("/", _home, methods=["GET"]),
    Route("/sign-in", _sign_in, methods=["GET", "POST"]),
    Route("/sign-out", _sign_out, methods=["POST"]),
    Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    *interactions.routes,
    *usage.routes,
    *keys.routes,
]


@dataclass(slots=True)
class Console:
    """The console's parts: `routes` to mount first (before the API's `/{version}/...`
    routes, which `/console/interactions` would match), `sessions` for AuthMiddleware,
    `reads` and `keys` for its pages (kept in `app.state.console`)."""

    routes: list[BaseRoute]
    sessions: ConsoleSessions
    reads: ConsoleReads
    keys: KeyService

    @staticmethod
    def bases(settings: Settings) -> list[str]:
        """`/console` and, with a `path_prefix`, `<prefix>/console`."""
        bases = ["/console"]
        if settings.path_prefix:
            bases.append(settings.path_prefix.rstrip("/") + "/console")
        return bases

    @classmethod
    def closed(cls, settings: Settings) -> list[BaseRoute]:
        """With `console = false`: routes that answer 404 under the console's paths (else
        `/console/interactions` would reach the API's listing, `console` as its version)."""
        return [Mount(base, routes=[]) for base in cls.bases(settings)]

    @classmethod
    def build(
        cls, settings: Settings, auth: Authenticator, keys: KeyStore, reads: ConsoleReads
    ) -> Console:
        """The console at `/console` and, with a `path_prefix`, at `<prefix>/console`."""
        bases = cls.bases(settings)
        sessions = ConsoleSessions(
            auth,
            console_secret(settings.data_dir),
            settings.console_session_seconds,
            tuple(bases),
        )
        # `/console` itself answers too: Mount matches only `/console/...`
        routes: list[BaseRoute] = []
        for base in bases:
            routes += [Route(base, _home, methods=["GET"]), Mount(base, routes=_ROUTES)]
        return cls(routes, sessions, reads, KeyService(keys))
