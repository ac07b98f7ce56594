"""The App service's Celery application (plugin mode uses Saleor's own)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saleor_crm_plugin.app.settings")

app = Celery("saleor_crm_plugin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["saleor_crm_plugin"])


@signals.worker_init.connect
@signals.worker_process_init.connect
def _settle_heap(**kwargs: Any) -> None:
    """Settle the heap (``core/heap.py``) in the worker's main process, before the prefork
    pool forks (the children then share the frozen pages), and again in each child, which
    imports the tasks' modules after the fork."""
    from saleor_crm_plugin.core import heap

    heap.settle()
