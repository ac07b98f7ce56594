"""The only place besides ``plugin.py`` that knows about Saleor internals, and only when they
are importable (plugin mode). In App mode every helper falls back to a no-op."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def allow_writer() -> Iterator[None]:
    """Saleor's Celery tasks must declare primary-database writes (its test settings raise
    otherwise); outside Saleor this does nothing."""
    try:
        from saleor.core.db.connection import allow_writer as saleor_allow_writer
    except ImportError:
        yield
        return
    with saleor_allow_writer():
        yield


def on_psycopg3() -> bool:
    """Whether Django's PostgreSQL backend runs on psycopg 3: App mode always does; plugin mode
    runs on Saleor's connection, which may still be psycopg2. Imported on call: the module
    imports a PostgreSQL driver, which the SQLite demo does not need."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


_PLUGIN_CONFIG_CACHE: tuple[float, dict[str, Any]] | None = None
_PLUGIN_CONFIG_TTL = 30.0


def plugin_configuration() -> dict[str, Any]:
    """Our plugin's configuration as saved in Saleor's dashboard (plugin mode), with defaults
    for unsaved fields; ``{}`` outside Saleor. Cached per process for half a minute because
    Celery tasks read it often and operators change it rarely."""
    global _PLUGIN_CONFIG_CACHE
    now = time.monotonic()
    if _PLUGIN_CONFIG_CACHE and now - _PLUGIN_CONFIG_CACHE[0] < _PLUGIN_CONFIG_TTL:
        return _PLUGIN_CONFIG_CACHE[1]
    try:
        from saleor.plugins.models import PluginConfiguration
    except ImportError:
        # Outside Saleor. A failed import is not cached by Python: trying again searched the
        # whole sys.path on every call (per loyalty account of every inbox batch).
        _PLUGIN_CONFIG_CACHE = (now, {})
        return {}
    from saleor_crm_plugin.plugin_config import CONFIG_FIELDS, PLUGIN_ID

    values: dict[str, Any] = {field.name: field.default for field in CONFIG_FIELDS}
    row = PluginConfiguration.objects.filter(identifier=PLUGIN_ID, channel__isnull=True).first()
    if row is not None:
        values.update({item["name"]: item["value"] for item in row.configuration or []})
        values["active"] = row.active
    _PLUGIN_CONFIG_CACHE = (now, values)
    return values


def clear_plugin_configuration_cache() -> None:
    global _PLUGIN_CONFIG_CACHE
    _PLUGIN_CONFIG_CACHE = None
