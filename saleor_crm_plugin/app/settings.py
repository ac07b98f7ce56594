"""Settings of the standalone App service, all from environment variables.

With nothing set it runs the demo: SQLite in the working directory and Celery tasks executed
inline. Production sets ``DATABASE_URL`` (PostgreSQL), ``CELERY_BROKER_URL``, ``SECRET_KEY``,
``CRM_APP_URL`` and ``CRM_ALLOWED_SALEOR_URLS``; see ``docs/settings.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url

from saleor_crm_plugin.app import APP_MIDDLEWARE
from saleor_crm_plugin.beat import BEAT_SCHEDULE
from saleor_crm_plugin.conf import INSECURE_DEV_KEY


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str, default: str = "") -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


DEBUG = _bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_DEV_KEY)
ALLOWED_HOSTS = _list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = ["saleor_crm_plugin"]
MIDDLEWARE = list(APP_MIDDLEWARE)
ROOT_URLCONF = "saleor_crm_plugin.app.urls"
WSGI_APPLICATION = "saleor_crm_plugin.app.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{Path.cwd() / 'saleor-crm.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "600")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's database: WAL without a sync per commit (a throwaway file, so durability on
    # power loss does not matter) keeps one webhook from costing a disk flush, and IMMEDIATE
    # transactions make concurrent writers queue instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
# Server-side prepared statements (psycopg's prepare_threshold) for the statements the App
# binds on the server (webhook insert, customer 360 reads, bulk writes; Django's ORM binds on
# the client and never prepares): PostgreSQL parses and plans each once per connection instead
# of per run, half of its CPU for a customer 360 (docs/benchmarks.md). On by default; set
# ``off`` behind a transaction-pooling PgBouncer that does not track prepared statements
# (older than 1.21, or ``max_prepared_statements = 0``).
_PREPARE_THRESHOLD = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5").strip().lower()
_PREPARE_OFF = ("", "off", "none")  # empty: what "off" was before it became the default
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and (
    _PREPARE_THRESHOLD not in _PREPARE_OFF
):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = int(_PREPARE_THRESHOLD)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "saleor_crm_plugin.app.cache.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
# Without a broker (the demo), tasks run inline in the calling process.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A webhook must not hang when the broker is down: publish fails fast, the sweep catches up.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1}
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2}
CELERY_TASK_ROUTES = {
    "saleor_crm_plugin.process_inbox": {"queue": "ingest"},
    "saleor_crm_plugin.sweep_inbox": {"queue": "ingest"},
    "saleor_crm_plugin.prune_inbox": {"queue": "ingest"},
    "saleor_crm_plugin.flush_metadata": {"queue": "analytics"},
    "saleor_crm_plugin.train_recommendations": {"queue": "ml"},
    "saleor_crm_plugin.retrain_recommendations_if_due": {"queue": "ml"},
    "saleor_crm_plugin.sync_recommendation_catalogue": {"queue": "ml"},
}
CELERY_TASK_DEFAULT_QUEUE = "analytics"
CELERY_BEAT_SCHEDULE = dict(BEAT_SCHEDULE)
CELERY_WORKER_PREFETCH_MULTIPLIER = 4

CRM_APP_MODE = True
CRM_APP_URL = os.environ.get("CRM_APP_URL", "")
CRM_ALLOWED_SALEOR_URLS = _list("CRM_ALLOWED_SALEOR_URLS")
CRM_APP_ID = os.environ.get("CRM_APP_ID", "saleor.crm")
# With a cache shared by web and workers (CACHE_URL), coalesce the after-commit kicks by
# default: one Celery publish per accepted delivery was half of the acknowledgement's CPU
# (bench.ack_cpu: 0.65 against 0.34 ms) and gave the worker one task per event. Without a
# shared cache the marker would live in each process's memory, where a worker cannot clear it.
CRM_INBOX_KICK_COALESCE_SECONDS = float(
    os.environ.get("CRM_INBOX_KICK_COALESCE_SECONDS", "0.05" if CACHE_URL else "0")
)
CRM_SALEOR_API_URL = os.environ.get("CRM_SALEOR_API_URL", "")
CRM_SALEOR_APP_TOKEN = os.environ.get("CRM_SALEOR_APP_TOKEN", "")
CRM_GRAPHQL_ALLOWED_ORIGINS = _list("CRM_GRAPHQL_ALLOWED_ORIGINS")
# Set by ``saleor-crm serve`` when it balances kept-alive connections over its workers
# (``--balance``, the default with several workers): the file through which the worker
# processes share their load (``core/balance.py``). Empty: no balancing.
CRM_CONNECTION_BALANCE_FILE = os.environ.get("CRM_CONNECTION_BALANCE_FILE", "")

# Every other ``CRM_*`` setting of docs/settings.md may come from the environment as well;
# values that parse as JSON (numbers, booleans, lists, objects) are used as such.
for _name, _value in os.environ.items():
    if _name.startswith("CRM_") and _name not in globals():
        try:
            globals()[_name] = json.loads(_value)
        except ValueError:
            globals()[_name] = _value

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        # granian's and gunicorn's common-log-like line: [time] addr - "METHOD path proto"
        # status milliseconds
        "access": {"format": "[%(asctime)s] %(message)s", "datefmt": "%Y-%m-%d %H:%M:%S %z"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "stream": "ext://sys.stdout",
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    # graphql-core logs every resolver exception with a traceback, permission denials
    # included; the GraphQL view logs the unexpected ones itself (as Saleor does).
    "loggers": {
        "graphql.execution.executor": {"level": "CRITICAL"},
        "graphql.execution.utils": {"level": "CRITICAL"},
        "saleor_crm_plugin.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
# One access-log line per request, written by the App's WSGI handler (``app/handler.py``);
# ``saleor-crm serve`` sets it from ``--access-log`` / ``--no-access-log`` (on by default).
CRM_ACCESS_LOG = _bool("CRM_ACCESS_LOG")
