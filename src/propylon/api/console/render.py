"""What every console page shares: the templates, the signed-in caller, the same-origin
check of POSTs, and errors shown as pages (never the API's JSON bodies)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from propylon.api.console.session import check_same_origin
from propylon.config import Settings
from propylon.domain.caller import Caller
from propylon.errors import PropylonError

__all__ = ["Handler", "base_of", "endpoint", "error_page", "go", "render", "settings_of"]

Handler = Callable[[Request, Caller], Awaitable[Response]]

_ENV = Environment(
    loader=PackageLoader("propylon.api.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _tokens(value: Any) -> str:
    return f"{int(value or 0):,}"


def _usd(value: Any) -> str:
    amount = float(value or 0)
    return f"${amount:,.6f}" if 0 < amount < 0.01 else f"${amount:,.2f}"


def _when(value: str | None) -> str:
    """`2026-12-05T22:10:03Z` as `2026-12-05 22:10:03`."""
    return (value or "").replace("T", " ").removesuffix("Z")


def _seconds(resource: dict[str, Any]) -> str:
    try:
        began = datetime.fromisoformat(resource["created"])
        ended = datetime.fromisoformat(resource["updated"])
    except (KeyError, ValueError):
        return ""
    return f"{(ended - began).total_seconds():.0f} s"


def _tojson(value: Any) -> Markup:
    # `<`, `>` and `&` escaped so the JSON cannot close the <script> element it sits in;
    # then safe as it is (HTML escaping would break the JSON)
    text = orjson.dumps(value).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


_ENV.filters.update(tokens=_tokens, usd=_usd, when=_when, seconds=_seconds, script_json=_tojson)


# Scripts only from the console's own files (its JSON data sits in non-executed <script>
# elements); no framing (clickjacking); forms post only to the console.
_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def base_of(request: Request) -> str:
    """The console's mount path for this request: `/console` or `<path_prefix>/console`."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    caller: Caller | None = None,
) -> HTMLResponse:
    """`template` rendered with `context` plus `request`, `base` (the mount path), `caller`
    and `now` (UTC)."""
    html = _ENV.get_template(template).render(
        request=request,
        base=base_of(request),
        caller=caller,
        now=datetime.now(UTC),
        **context,
    )
    return HTMLResponse(html, status, headers=_HEADERS)


def go(request: Request, path: str) -> Response:
    """Send the browser to the console page `path` (`/interactions`): a 303, or for an htmx
    request the `HX-Redirect` header it follows (it would swap a 303's page in place)."""
    target = base_of(request) + path
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"hx-redirect": target})
    return RedirectResponse(target, 303)


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console route from `handler(request, caller)`: a POST must come from the console's
    own page (else 403), a request without a session goes to the sign-in page, and a
    PropylonError becomes an error page with its HTTP status."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        caller = request.scope.get("state", {}).get("caller")
        try:
            if request.method == "POST":
                check_same_origin(request)
            if not isinstance(caller, Caller):
                return go(request, "/sign-in")
            return await handler(request, caller)
        except PropylonError as exc:
            return error_page(request, exc, caller if isinstance(caller, Caller) else None)

    return run


def error_page(request: Request, exc: PropylonError, caller: Caller | None) -> HTMLResponse:
    """The error page of `exc`, with its HTTP status (a fragment for htmx requests)."""
    template = "error_fragment.html" if request.headers.get("hx-request") else "error.html"
    context = {"status": exc.http_status, "reason": exc.status, "message": exc.message}
    return render(request, template, context, exc.http_status, caller)
