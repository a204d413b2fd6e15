"""The parts every process shares, built from the settings: store, service, webhook deliveries
and (with PostgreSQL) the procrastinate jobs. `create_app` (a `serve` process) and the
worker (a `propylon worker` process) compose theirs from one `Runtime`.

Embedded (no `database_url`, or SQLite): the in-process queue runs background runs and the
delivery loop sends webhooks, in the one process. Distributed (PostgreSQL): background runs and
webhook deliveries are procrastinate jobs that `propylon worker` processes run; each process
records its heartbeat and the foreground runs it owns.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from propylon.bus import bus_for
from propylon.config import Settings
from propylon.gateway.registry import ModelRegistry
from propylon.jobs.webhooks import DeliveryWorker
from propylon.observability import Metrics
from propylon.outbound import OutboundPolicy
from propylon.providers.google_interactions import GoogleInteractions
from propylon.service.batches import BatchService
from propylon.service.caches import CacheService
from propylon.service.files import FileService
from propylon.service.generate import GenerateService
from propylon.service.idempotency import Idempotency
from propylon.service.interactions import InteractionService
from propylon.service.ledger import Ledger
from propylon.service.stateless import StatelessCalls
from propylon.service.webhooks import WebhookService, new_secret
from propylon.store.blobs import Blobs
from propylon.store.stores import Stores, open_stores

if TYPE_CHECKING:  # the `distributed` extra: imported only when the database is PostgreSQL
    from procrastinate import App

    from propylon.jobs.procrastinate import ProcrastinateQueue
    from propylon.jobs.reconciler import Heartbeat

__all__ = ["Runtime", "build_runtime", "is_distributed"]

logger = logging.getLogger("propylon")


def is_distributed(settings: Settings) -> bool:
    """True when the database is PostgreSQL: several processes share it, jobs are
    procrastinate's."""
    url = settings.database_url
    return url is not None and url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def _generated_secret(data_dir: Path) -> str:
    """The data dir's own signing secret for `webhook_config.uris` deliveries (made once)."""
    path = data_dir / "webhook_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(new_secret())
    return path.read_text().strip()


def _env_key(variable: str | None) -> str | None:
    """An upstream API key from the environment. Raises ValueError when it is not set."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ValueError(f"environment variable `{variable}` is not set")
    return value


@dataclass
class Runtime:
    """One process's parts. `stateless` and `generate`: the generateContent family's calls
    (sharing the service's quotas and ledger), which Gemini `batches` run. `jobs`
    (procrastinate's App), `queue`, `batch_queue` and `heartbeat` are set in a distributed
    deployment only."""

    settings: Settings
    stores: Stores
    service: InteractionService
    webhooks: WebhookService
    deliveries: DeliveryWorker
    metrics: Metrics
    agents: dict[str, GoogleInteractions]
    owner: str
    stateless: StatelessCalls
    generate: GenerateService
    batches: BatchService
    files: FileService
    jobs: App | None = None
    queue: ProcrastinateQueue | None = None
    batch_queue: ProcrastinateQueue | None = None
    heartbeat: Heartbeat | None = None
    _closing: list[ModelRegistry] = field(default_factory=list)

    async def open(self) -> None:
        """Connect and migrate the store; with PostgreSQL, open the job tables and start the
        heartbeat (a `serve` process's foreground runs are alive while it beats)."""
        await self.stores.store.open()
        if self.jobs is not None:
            from propylon.jobs.procrastinate import ensure_schema

            await self.jobs.open_async()
            await ensure_schema(self.jobs)
        if self.heartbeat is not None:
            await self.heartbeat.start()

    def retire(self, registry: ModelRegistry) -> None:
        """A model registry replaced by a reload: closed with the runtime."""
        self._closing.append(registry)

    async def close(self) -> None:
        """Stop the heartbeat and close the models, agents, jobs and store (after the
        service's shutdown)."""
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        for queue in (self.queue, self.batch_queue):
            if queue is not None:
                await queue.stop()
        for registry in (*self._closing, self.service.models):
            await registry.close()
        for agent in self.agents.values():
            await agent.close()
        await self.service.bus.aclose()
        if self.jobs is not None:
            await self.jobs.close_async()
        await self.stores.store.close()


def build_runtime(settings: Settings, models: ModelRegistry, kind: str) -> Runtime:
    """The parts of a `kind` process (`serve` or `worker`); nothing connects until
    `Runtime.open`. The bus is Redis's with `redis_url`, else the in-process one. Raises
    ValueError for inconsistent settings (an unset agent key variable, an unsupported database
    URL)."""
    stores = open_stores(settings.database_url, settings.database_path)
    store = stores.store
    metrics = Metrics()
    outbound = OutboundPolicy.from_settings(settings)
    webhooks = WebhookService(
        store, outbound, settings.webhook_secret or _generated_secret(settings.data_dir)
    )
    deliveries = DeliveryWorker(
        store,
        webhooks.uris_secret_of,
        max_attempts=settings.webhook_max_attempts,
        backoff=settings.webhook_retry_initial_seconds,
        disable_after=settings.webhook_disable_after_failures,
        timeout=settings.webhook_timeout_seconds,
        policy=outbound,
    )
    agents = {
        agent.name: GoogleInteractions(
            agent.base_url,
            _env_key(agent.api_key_env),
            agent.timeout_seconds,
            settings.upstream_max_line_bytes,
        )
        for agent in settings.agents
    }
    # this process, unique over the deployment: its heartbeat and the foreground runs it owns
    owner = f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    jobs = queue = None
    if is_distributed(settings):
        from propylon.jobs.procrastinate import ProcrastinateQueue, new_app

        assert settings.database_url is not None
        # every connection of this process (the store's too) carries its name: an operator
        # sees in pg_stat_activity which process holds which connection
        os.environ.setdefault("PGAPPNAME", f"propylon-{owner}"[:63])
        jobs = new_app(settings.database_url, f"propylon-{owner}")
        queue = ProcrastinateQueue(jobs, owner)
    files = FileService(stores.files, Blobs(settings.data_dir), settings)
    service = InteractionService(
        store,
        bus_for(settings.redis_url, settings.stream_buffer_events),
        models,
        settings,
        # each reservation names its process: the reconciler settles those of dead ones
        ledger=Ledger(stores.ledger, settings, owner if jobs is not None else None),
        idempotency=Idempotency(store, settings.idempotency_window_seconds),
        webhooks=webhooks,
        on_outbox=queue.wake_deliveries if queue is not None else deliveries.wake,
        metrics=metrics,
        agents=agents,
        custom_agents=stores.agents,
        caches=stores.caches,
        files=files,
    )
    # Stateless calls (generateContent, Chat Completions, embeddings) and the batches that run
    # them share the interactions' quotas and ledger.
    stateless = StatelessCalls(models, service.quotas, service.ledger, metrics)
    caches = CacheService(stores.caches, lambda: service.models, files)
    generate = GenerateService(stateless, caches)
    batches = BatchService(
        stores.batches,
        generate,
        settings.batch_concurrency,
        settings.background_workers,
        files,
    )
    runtime = Runtime(
        settings,
        stores,
        service,
        webhooks,
        deliveries,
        metrics,
        agents,
        owner,
        stateless,
        generate,
        batches,
        files,
    )
    if jobs is not None and queue is not None:
        from propylon.jobs.procrastinate import BATCH_TASK

        service.jobs = queue
        store.on_create = queue.in_transaction
        batch_queue = ProcrastinateQueue(jobs, owner, task=BATCH_TASK, argument="batch_id")
        batches.jobs = batch_queue
        stores.batches.on_batch_create = batch_queue.batch_created
        runtime.jobs, runtime.queue, runtime.batch_queue = jobs, queue, batch_queue
        if kind == "serve":
            from propylon.jobs.reconciler import Heartbeat

            runtime.heartbeat = Heartbeat(jobs, owner, kind, settings.heartbeat_seconds)
    return runtime
