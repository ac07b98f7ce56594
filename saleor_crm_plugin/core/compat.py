"""The only place besides ``plugin.py`` that knows about Saleor internals, and only when they
are importable (plugin mode). In App mode every helper falls back to a no-op."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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
