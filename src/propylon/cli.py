"""The `propylon` command: serve, migrate, keys, export, import, purge."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import logging
import math
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import orjson
import typer
import uvicorn

from propylon.config import Settings

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(
    help="Propylon: a self-hosted server for Google's Interactions API.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(
    help="API keys: each belongs to a tenant; stored hashed, shown once.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

ConfigOption = Annotated[Path | None, typer.Option(help="A TOML settings file.")]
DataDirOption = Annotated[Path | None, typer.Option(help="Where state is kept [default: ./data].")]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        help="The database: postgresql://USER@HOST:PORT/DB or sqlite:///PATH "
        "[default: the SQLite file in the data dir]."
    ),
]
RedisOption = Annotated[
    str | None, typer.Option(help="Redis shared by several processes: redis://HOST:PORT/N.")
]


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


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return Settings.load(config, **overrides)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"propylon: {exc}", err=True)
        raise typer.Exit(2) from None


def _with_store(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(store)` on the settings' store (migrated first)."""
    from propylon.store.stores import open_stores

    async def run() -> T:
        store = open_stores(settings.database_url, settings.database_path).store
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ValueError as exc:  # an unsupported database URL
        typer.echo(f"propylon: {exc}", err=True)
        raise typer.Exit(2) from None


def _stored_key_count(settings: Settings) -> int:
    """Keys the store has ever held, revoked ones included (a store that has had keys keeps
    requiring one), read without migrating it (the app migrates once, at start-up); 0 when
    there is no store or no key table yet."""
    if settings.database_url is not None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import DBAPIError

        from propylon.store.migrate import sync_url

        engine = create_engine(sync_url(settings.database_url))
        try:
            with engine.connect() as connection:
                return int(connection.execute(text("SELECT count(*) FROM api_keys")).scalar_one())
        except DBAPIError:
            return 0
        finally:
            engine.dispose()
    import sqlite3

    if not settings.database_path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(settings.database_path)) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM api_keys").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def _configure_logging(settings: Settings) -> None:
    from propylon.domain.redaction import RedactingFilter

    handler = logging.StreamHandler()
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())  # no credential reaches a log line
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    # HTTP client libraries log request URLs at INFO; an outbound URL may carry a secret.
    for name in ("httpx", "httpx2", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _configure_tracing(settings: Settings) -> None:
    if settings.otel_exporter == "none":
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "propylon"}))
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: Any = OTLPSpanExporter(endpoint=settings.otel_endpoint)
    else:
        exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8080].")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
) -> None:
    """Serve the Interactions API. On SQLite, refuses to start (exit code 1) while another
    server holds the data dir; on PostgreSQL, several servers share the database."""
    from propylon.app import create_app
    from propylon.store.lock import DataDirInUse, DataDirLock

    settings = _settings(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
    )
    if not _shared(settings):
        lock = DataDirLock(settings.data_dir)  # held until the process ends
        try:
            lock.acquire()
        except DataDirInUse as exc:
            typer.echo(f"propylon: {exc}", err=True)
            raise typer.Exit(1) from None
    stored_keys = _stored_key_count(settings)
    if not settings.api_keys and not stored_keys and not is_loopback(settings.host):
        typer.echo(
            f"propylon: refusing to listen on {settings.host} with no API key configured; "
            "create one with `propylon keys create`, set `api_keys`, or listen on 127.0.0.1",
            err=True,
        )
        raise typer.Exit(2)
    _configure_logging(settings)
    _configure_tracing(settings)
    try:
        asgi = create_app(settings)
    except ValueError as exc:
        typer.echo(f"propylon: {exc}", err=True)
        raise typer.Exit(2) from None
    names = ", ".join(
        m.name + (f" (aliases: {', '.join(m.aliases)})" if m.aliases else "")
        for m in asgi.state.models.models
    )
    auth = "API keys" if settings.api_keys or stored_keys else "none (loopback only)"
    typer.echo(f"Propylon serving on http://{settings.host}:{settings.port}")
    typer.echo(f"  data dir: {settings.data_dir.resolve()}")
    if settings.database_url is not None:
        typer.echo(f"  database: {_redacted(settings.database_url)}")
    typer.echo(f"  models:   {names}")
    typer.echo(f"  auth:     {auth}")
    server = _Server(
        uvicorn.Config(
            asgi,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
            lifespan="on",
            log_config=None,
            timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
            # X-Forwarded-Proto / -For are believed from these addresses only
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        ),
        on_stop=asgi.state.service.begin_shutdown,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise typer.Exit(3)


# Container objects allocated (net) between two collections of the youngest generation
# (CPython's default: 700).
_GC_YOUNG = 10_000


def _tune_gc() -> None:
    """Set the cyclic garbage collector up for serving, once the app has started.

    What start-up made (modules, schemas, the app) lives as long as the process: frozen, full
    collections no longer traverse it. And a request's objects live for its milliseconds: with
    CPython's default threshold young collections run so often that many are still in use, are
    promoted, and die in the oldest generation, whose full collections (a traversal of the whole
    heap) then cost a fifth of a busy server's CPU. Collecting the youngest every 10,000
    allocations instead promotes few (most are freed by their reference counts first)."""
    gc.collect()  # start-up's own garbage is freed, not frozen with it
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])


def _shared(settings: Settings) -> bool:
    """True when the database is one several processes may share (PostgreSQL)."""
    url = settings.database_url
    return url is not None and url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def _redacted(url: str) -> str:
    """`url` without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: say nothing of it
        return "(unparseable URL)"


@app.command()
def worker(
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Background runs at once [default: `worker_concurrency`, 8].", min=1),
    ] = None,
) -> None:
    """Run queued background interactions, webhook deliveries and the reconciler, from a
    PostgreSQL database several `propylon serve` processes share. Graceful on SIGTERM: the
    runs under way have `shutdown_timeout_seconds` to finish, the rest go back to the queue."""
    from propylon.jobs.worker import run_worker

    settings = _settings(
        config,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        worker_concurrency=concurrency,
    )
    if not _shared(settings):
        typer.echo("propylon: `worker` needs a PostgreSQL `--database-url`", err=True)
        raise typer.Exit(2)
    _configure_logging(settings)
    _configure_tracing(settings)
    try:
        asyncio.run(run_worker(settings, settings.worker_concurrency))
    except ValueError as exc:
        typer.echo(f"propylon: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def migrate(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Bring the database's schema to the current version (`serve` also does at start;
    safe while other processes start or serve)."""
    from propylon.store.migrate import upgrade

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    url = settings.database_url
    if url is None:
        settings.database_path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{settings.database_path}"
    try:
        upgrade(url)
    except ValueError as exc:
        typer.echo(f"propylon: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"migrated {_redacted(url)} to the current schema")


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app the moment a stop is asked (`on_stop`, run on the
    event loop): uvicorn waits for the requests under way before the lifespan shutdown, and
    an open stream would not end by itself."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Once the app has started (its lifespan too). Here, not in the app's lifespan: this
        # process is Propylon's own, while an app that `create_app` made may run inside
        # someone else's, whose collector is not ours to tune.
        _tune_gc()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:  # a signal handler: hand the work to the loop
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._on_stop)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant (project) the key acts in.")],
    name: Annotated[str, typer.Option(help="A label for people.")] = "",
    admin: Annotated[bool, typer.Option(help="May see and act on every tenant.")] = False,
    models: Annotated[str | None, typer.Option(help="Allowed models, comma-separated.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Spend budget per period, USD.")] = None,
    budget_period: Annotated[str, typer.Option(help="`day` or `month` (UTC).")] = "month",
    max_tokens: Annotated[
        int | None, typer.Option(help="Token ceiling of one interaction.")
    ] = None,
    service_tiers: Annotated[
        str | None,
        typer.Option(help="`service_tier` values it may use, comma-separated (default: all)."),
    ] = None,
    api_revision: Annotated[
        str | None,
        typer.Option(
            help="Wire revision (YYYY-MM-DD) of its requests that send no `Api-Revision` "
            "header; before 2026-05-20: the legacy `outputs` schema (default: the server's)."
        ),
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a key; it is printed once and only its SHA-256 is stored."""
    from propylon.schema.legacy import revision_date
    from propylon.service.keys import new_key

    if budget_period not in ("day", "month"):
        raise typer.BadParameter("`--budget-period` is `day` or `month`")
    if api_revision is not None:
        try:
            api_revision = revision_date(api_revision)
        except ValueError as exc:
            raise typer.BadParameter(f"`--api-revision`: {exc}") from None
    policy = {
        k: v
        for k, v in {
            "models": [m.strip() for m in models.split(",") if m.strip()] if models else None,
            "rpm": rpm,
            "tpm": tpm,
            "budget_usd": budget_usd,
            "budget_period": budget_period if budget_usd is not None else None,
            "max_tokens_per_interaction": max_tokens,
            "service_tiers": _tiers(service_tiers) if service_tiers is not None else None,
        }.items()
        if v is not None
    }
    key, secret = new_key(tenant, name, admin, policy, api_revision=api_revision)
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    _with_store(settings, lambda store: store.save_api_key(key))
    typer.echo(
        f"key id:  {key.id}\ntenant:  {tenant}\napi key: {secret}\n(shown once: store it now)"
    )


def _tiers(value: str) -> list[str]:
    tiers = [t.strip() for t in value.split(",") if t.strip()]
    unknown = sorted(set(tiers) - {"flex", "standard", "priority", "deferred"})
    if unknown:
        raise typer.BadParameter(f"unknown service tier `{unknown[0]}`")
    return tiers


@keys_app.command("list")
def keys_list(
    config: ConfigOption = None, data_dir: DataDirOption = None, database_url: DatabaseOption = None
) -> None:
    """List keys (never their secrets)."""
    from rich.console import Console
    from rich.table import Table

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    found = _with_store(settings, lambda s: s.list_api_keys())
    table = Table("id", "tenant", "name", "admin", "created", "revoked", "policy", "api_revision")
    for column in table.columns:
        column.overflow = "fold"  # ids must stay whole, whatever the terminal's width
    for key in found:
        table.add_row(
            key.id,
            key.tenant,
            key.name,
            "yes" if key.admin else "",
            key.created,
            key.revoked or "",
            orjson.dumps(key.policy).decode(),
            key.api_revision or "",
        )
    Console(width=max(160, Console().width)).print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a key: it answers 401 from then on."""
    from propylon.domain.caller import SYSTEM
    from propylon.errors import NotFound
    from propylon.service.keys import KeyService

    async def revoke(store: Any) -> bool:
        try:
            await KeyService(store).revoke(SYSTEM, key_id)
        except NotFound:
            return False
        return True

    if not _with_store(_settings(config, data_dir=data_dir, database_url=database_url), revoke):
        typer.echo(f"propylon: no key `{key_id}`", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@app.command("export")
def export(
    tenant: Annotated[str, typer.Option(help="The tenant whose interactions to export.")],
    output: Annotated[Path | None, typer.Option(help="A file; default: standard output.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Write a tenant's interactions as JSONL: one line per interaction with its steps, usage,
    labels (in `request`) and its whole event log. `propylon import` reads it back.
    Credentials in the requests (MCP `headers`, fields named like a credential) are written
    as `[redacted]` (see propylon.domain.redaction)."""
    from propylon.domain.redaction import redact_request

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    rows = _with_store(settings, lambda s: s.export(tenant))
    sink = output.open("wb") if output else sys.stdout.buffer
    for record, events in rows:
        record.request = redact_request(record.request)  # a dump never carries credentials
        sink.write(
            orjson.dumps(
                {
                    "record": dataclasses.asdict(record),
                    "events": [[e.seq, e.type, e.data] for e in events],
                }
            )
            + b"\n"
        )
    if output:
        sink.close()
        typer.echo(f"exported {len(rows)} interactions to {output}", err=True)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="A JSONL file from `propylon export`.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Read interactions exported by `propylon export` into this data dir; ids already present
    are skipped."""
    from propylon.domain.events import Event
    from propylon.store.base import InteractionRecord

    async def load(store: Any) -> tuple[int, int]:
        added = skipped = 0
        with source.open("rb") as lines:
            for line in lines:
                if not line.strip():
                    continue
                row = orjson.loads(line)
                record = InteractionRecord(**row["record"])
                if await store.get(record.id) is not None:
                    skipped += 1
                    continue
                await store.create(record, [Event(*e) for e in row["events"]])
                added += 1
        return added, skipped

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    added, skipped = _with_store(settings, load)
    typer.echo(f"imported {added} interactions ({skipped} already present)")


@app.command()
def purge(
    config: ConfigOption = None, data_dir: DataDirOption = None, database_url: DatabaseOption = None
) -> None:
    """Delete the interactions older than their tenant's retention period, now."""
    from propylon.service.retention import purge_expired

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    removed = _with_store(settings, lambda store: purge_expired(store, settings))
    typer.echo(f"purged {removed} interactions")
