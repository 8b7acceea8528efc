"""Meterline settings: 12-factor, read from the environment.

Embedded defaults (``make run``): SQLite under ``var/``, chDB under ``var/clickhouse``, no broker
(tasks run in-process). Production (docker compose): PostgreSQL, a ClickHouse server, Redis.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_match, env_optional, env_str, env_url
from config.queues import ROUTES, Queue

# Lets admin and queryset generics (ModelAdmin[Model]) be written at runtime for the type checker.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("METERLINE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_optional("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG and env_bool("METERLINE_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY is not set")
    # Embedded mode: a stable per-checkout key kept under var/, never committed.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        import secrets

        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The scheme from X-Forwarded-Proto, only when a proxy that always sets it (ops/nginx) is the sole
# way in: a client reaching the app directly could send the header itself.
if env_bool("METERLINE_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from the app (offline machines: no CDN)
    "tenancy",
    "web",
    "ledger",
    "ingest",
    "alerts",
    "dashboards",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'meterline.sqlite3'}",
    schemes=("sqlite", "postgres", "postgresql", "pgsql"),
)
if _database_url is None:  # it has a default: only an empty override gets here
    raise ImproperlyConfigured("DATABASE_URL is empty")
DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL + a busy timeout: the embedded server writes the outbox from request threads while the
    # in-process drain reads it.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CLICKHOUSE_URL = env_url("CLICKHOUSE_URL", f"chdb://{VAR_DIR / 'clickhouse'}", schemes=("chdb", "http", "https"))
# A server URL may name the database in its path (http://host:8123/meterline); the variable wins.
_ch_path_db = "" if str(CLICKHOUSE_URL).startswith("chdb") else urlparse(str(CLICKHOUSE_URL)).path.strip("/")
CLICKHOUSE_DATABASE = env_str("CLICKHOUSE_DATABASE", _ch_path_db or "meterline")
# A cluster of the servers' remote_servers: migrate_clickhouse then creates replicated tables ON CLUSTER
# with Distributed tables in front (ledger/clickhouse/cluster.py, docs/scaling.md); unset: one server.
CLICKHOUSE_CLUSTER = env_match(
    "CLICKHOUSE_CLUSTER", r"[A-Za-z0-9_][A-Za-z0-9_.-]*", "a cluster name (letters, digits, '_', '.', '-')"
)
if CLICKHOUSE_CLUSTER and str(CLICKHOUSE_URL).startswith("chdb"):
    raise ImproperlyConfigured(
        "CLICKHOUSE_CLUSTER is set but CLICKHOUSE_URL is chdb://: the embedded engine is one node. "
        "Point CLICKHOUSE_URL at a node of the cluster (http://user:password@host:8123), or unset CLICKHOUSE_CLUSTER."
    )
CLICKHOUSE_RAW_TTL_DAYS = env_int("CLICKHOUSE_RAW_TTL_DAYS", 400, minimum=1)
CLICKHOUSE_MINUTE_TTL_DAYS = env_int("CLICKHOUSE_MINUTE_TTL_DAYS", 14, minimum=1)
CLICKHOUSE_HOUR_TTL_DAYS = env_int("CLICKHOUSE_HOUR_TTL_DAYS", 730, minimum=1)
if CLICKHOUSE_HOUR_TTL_DAYS < CLICKHOUSE_RAW_TTL_DAYS:
    # Day rollups (kept for good) are rebuilt from hour rollups: a late call inside raw retention
    # must still find its day's hour rows, or the rebuild would erase the day.
    raise ImproperlyConfigured(
        f"CLICKHOUSE_HOUR_TTL_DAYS={CLICKHOUSE_HOUR_TTL_DAYS} must be at least "
        f"CLICKHOUSE_RAW_TTL_DAYS={CLICKHOUSE_RAW_TTL_DAYS}"
    )
# Latency/TTFT percentiles read precomputed per bucket where a query allows it (ledger/quantiles.py);
# off: every percentile merges the TDigest states (the answers are the same).
LEDGER_PRECOMPUTED_QUANTILES = env_bool("METERLINE_PRECOMPUTED_QUANTILES", True)
# Seconds a statement may run before the server stops it (docs/operations.md): reads, and writes
# (inserts, rollup INSERT ... SELECT, migrations; 0: unbounded).
CLICKHOUSE_MAX_EXECUTION_TIME = env_int("CLICKHOUSE_MAX_EXECUTION_TIME", 60, minimum=1)
CLICKHOUSE_MAX_EXECUTION_TIME_WRITE = env_int("CLICKHOUSE_MAX_EXECUTION_TIME_WRITE", 600, minimum=0)

CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", None, schemes=("redis", "rediss", "amqp", "amqps"))
# chDB opens its directory in one process only; with a broker the workers and the web server would
# each open it (and take turns failing). Tests that run a broker and chDB in ONE process may allow it.
if (
    CELERY_BROKER_URL
    and str(CLICKHOUSE_URL).startswith("chdb")
    and not env_bool("METERLINE_ALLOW_CHDB_WITH_BROKER", False)
):
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is set but CLICKHOUSE_URL is chdb://: the embedded ClickHouse can be opened by "
        "one process only, and with a broker the Celery workers and the web server would each open it. "
        "Use a ClickHouse server URL (CLICKHOUSE_URL=http://user:password@host:8123) with a broker, or unset "
        "CELERY_BROKER_URL for embedded mode (manage.py serve drains and runs the schedule in-process)."
    )
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = Queue.DEFAULT.value
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ROUTES = {pattern: {"queue": queue.value} for pattern, queue in ROUTES.items()}
# Every task is bounded: past the soft limit it is interrupted (SoftTimeLimitExceeded, its claims
# expire and the sweeps redo the work), past the hard limit its worker process is replaced.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840, minimum=5)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_TASK_SOFT_TIME_LIMIT={CELERY_TASK_SOFT_TIME_LIMIT} must be below "
        f"CELERY_TASK_TIME_LIMIT={CELERY_TASK_TIME_LIMIT}"
    )
# A rollup's claim on its dirty hours, renewed every third of it while the rollup runs (ledger/claims.py):
# a killed worker's hours are claimed again by the next rollup sweep after it.
ROLLUP_CLAIM_SECONDS = env_int("ROLLUP_CLAIM_SECONDS", 15, minimum=5)
# No broker: run tasks in-process. `serve` also drives the periodic schedule itself.
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None

# Ingest limits (per request).
INGEST_MAX_RECORDS = env_int("INGEST_MAX_RECORDS", 1000, minimum=1)
INGEST_MAX_BYTES = env_int("INGEST_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
INGEST_MAX_FUTURE_SECONDS = env_int("INGEST_MAX_FUTURE_SECONDS", 86400, minimum=0)
INGEST_RATE_LIMIT = env_optional("INGEST_RATE_LIMIT")  # e.g. "600/min" per API key; unset = unlimited
# The ingest doors remember a valid API key this many seconds per web process (0: look it up every
# request). A revoked or deleted key is refused at once by the process that revoked it, within this
# time by every other.
INGEST_KEY_CACHE_SECONDS = env_int("INGEST_KEY_CACHE_SECONDS", 5, minimum=0)
# A gzip body may not exceed the decoded limit either; Django refuses larger bodies before reading.
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BYTES

_cache_url = env_url("CACHE_URL", None, schemes=("redis", "rediss"))
CACHES = {
    "default": (
        {"BACKEND": "config.cache.ResilientRedisCache", "LOCATION": _cache_url}
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Outbox drain: how long a claimed batch is leased (renewed every third of it while the drain works,
# so a dead drain's batches are due again within it), how often a failing one is retried, and how
# many non-connection failures send it to the dead-letter state.
OUTBOX_LEASE_SECONDS = env_int("OUTBOX_LEASE_SECONDS", 15, minimum=5)
OUTBOX_RETRY_BASE_SECONDS = env_int("OUTBOX_RETRY_BASE_SECONDS", 5, minimum=1)
OUTBOX_RETRY_MAX_SECONDS = env_int("OUTBOX_RETRY_MAX_SECONDS", 600, minimum=1)
OUTBOX_MAX_DATA_ATTEMPTS = env_int("OUTBOX_MAX_DATA_ATTEMPTS", 5, minimum=1)
OUTBOX_DRAIN_BATCHES = env_int("OUTBOX_DRAIN_BATCHES", 40, minimum=1)  # batches per ClickHouse insert
OUTBOX_KEEP_DONE_HOURS = env_int("OUTBOX_KEEP_DONE_HOURS", 24, minimum=1)  # also the Idempotency-Key window

# Budgets and alerts (docs/alerts.md).
METERLINE_BASE_URL = env_url("METERLINE_BASE_URL", "http://127.0.0.1:8000", schemes=("http", "https"))
ALERTS_HTTP_TIMEOUT_SECONDS = env_int("ALERTS_HTTP_TIMEOUT_SECONDS", 10, minimum=1)
ALERTS_RETRY_BASE_SECONDS = env_int("ALERTS_RETRY_BASE_SECONDS", 30, minimum=1)
ALERTS_RETRY_MAX_SECONDS = env_int("ALERTS_RETRY_MAX_SECONDS", 3600, minimum=1)
ALERTS_MAX_ATTEMPTS = env_int("ALERTS_MAX_ATTEMPTS", 10, minimum=1)
# Slack/webhook URLs must reach public addresses; these host names and/or CIDRs may be internal.
ALERTS_ALLOWED_PRIVATE_HOSTS = env_list("ALERTS_ALLOWED_PRIVATE_HOSTS", [])
# After a period ends, its actual-spend thresholds are still evaluated this long (late or backfilled spend).
ALERTS_PERIOD_GRACE_SECONDS = env_int("ALERTS_PERIOD_GRACE_SECONDS", 7200, minimum=0)
# Email: SMTP when EMAIL_HOST is set, else the console (embedded mode prints mails to the log).
_email_host = env_optional("EMAIL_HOST")
EMAIL_HOST = _email_host or "localhost"
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if _email_host else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")  # or EMAIL_HOST_PASSWORD_FILE
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    if env_optional("EMAIL_USE_TLS") is not None:
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one to false")
    EMAIL_USE_TLS = False  # SSL asked for explicitly wins over the STARTTLS default
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Meterline <alerts@localhost>")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
# Sign-in throttling (tenancy/signin.py): failures per account and per client address in a window.
LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Behind the shipped nginx the client address is X-Forwarded-For (nginx overwrites it with the peer's
# address; the last entry is used, so a proxy that appends works too).
TRUST_X_FORWARDED_FOR = env_bool("METERLINE_TRUST_X_FORWARDED_FOR", False)
LOGIN_REDIRECT_URL = "/"  # the landing page: the only project's overview, or the list of projects
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "dashboards.staticfiles.PlotlyFinder",  # plotly.js from the installed package (no CDN)
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenancy.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "api.errors.exception_handler",  # a store outage is a 503 with Retry-After
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Meterline API",
    "DESCRIPTION": "The fuel ledger for LLM calls: ingest, usage, budgets and alerts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],  # bodies are documented as JSON only
    "POSTPROCESSING_HOOKS": ["api.schema.add_call_record_schema", "api.schema.add_error_responses"],
}

# GET /metrics (docs/operations.md, "Metrics"): a bearer token, client networks, or both. Neither: loopback only.
METRICS_TOKEN = env_optional("METRICS_TOKEN")  # or METRICS_TOKEN_FILE
if METRICS_TOKEN is not None and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`)")
_any_network = ["0.0.0.0/0", "::/0"]
METRICS_ALLOWED_NETWORKS = env_list(
    "METRICS_ALLOWED_NETWORKS", _any_network if METRICS_TOKEN else ["127.0.0.0/8", "::1"]
)
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not an address or CIDR") from None
METRICS_MULTIPROC_DIR = env_optional("PROMETHEUS_MULTIPROC_DIR")  # per-process counters summed across processes

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Scrubbed after formatting: no database error context, URL path or API key reaches a log line.
    "formatters": {
        "plain": {"()": "config.logs.ScrubbingFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "clickhouse_connect": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},  # one line per periodic task run is noise
        "django.db.backends": {"level": "INFO"},
    },
}
