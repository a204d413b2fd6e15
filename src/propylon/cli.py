"""The `propylon` command."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from propylon.app import create_app
from propylon.config import Settings

__all__ = ["app"]

app = typer.Typer(
    help="Propylon: a self-hosted server for Google's Interactions API.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Propylon: a self-hosted server for Google's Interactions API."""


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8080].")] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML settings file.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where state is kept [default: ./data].")
    ] = None,
) -> None:
    """Serve the Interactions API."""
    try:
        settings = Settings.load(config, host=host, port=port, data_dir=data_dir)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"propylon: {exc}", err=True)
        raise typer.Exit(2) from None
    if not settings.api_keys and not is_loopback(settings.host):
        typer.echo(
            f"propylon: refusing to listen on {settings.host} with no API key configured; "
            "set `api_keys` (or PROPYLON_API_KEYS) or listen on 127.0.0.1",
            err=True,
        )
        raise typer.Exit(2)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # HTTP client libraries log request URLs at INFO; an outbound URL may carry a secret.
    for name in ("httpx", "httpx2", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        asgi = create_app(settings)
    except ValueError as exc:
        typer.echo(f"propylon: {exc}", err=True)
        raise typer.Exit(2) from None
    names = ", ".join(
        m.name + (f" (aliases: {', '.join(m.aliases)})" if m.aliases else "")
        for m in asgi.state.models.models
    )
    typer.echo(f"Propylon serving on http://{settings.host}:{settings.port}")
    typer.echo(f"  data dir: {settings.data_dir.resolve()}")
    typer.echo(f"  models:   {names}")
    typer.echo(f"  auth:     {'API keys' if settings.api_keys else 'none (loopback only)'}")
    uvicorn.run(
        asgi,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
    )
