from __future__ import annotations

from celery import shared_task

from saleor_crm_plugin.core.compat import allow_writer
from saleor_crm_plugin.events import inbox


@shared_task(name="saleor_crm_plugin.process_inbox", ignore_result=True)
def process_inbox_task() -> int:
    with allow_writer():
        return inbox.process_kicked()


@shared_task(name="saleor_crm_plugin.sweep_inbox", ignore_result=True)
def sweep_inbox_task() -> int:
    with allow_writer():
        return inbox.sweep()


@shared_task(name="saleor_crm_plugin.prune_inbox", ignore_result=True)
def prune_inbox_task() -> int:
    with allow_writer():
        return inbox.prune()
