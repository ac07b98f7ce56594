from __future__ import annotations

from celery import shared_task

from saleor_crm_plugin.core.compat import allow_writer
from saleor_crm_plugin.rfm import services


@shared_task(name="saleor_crm_plugin.rfm_nightly", ignore_result=True)
def rfm_nightly_task() -> list[int]:
    """Beat: score every channel (incremental, periodically full)."""
    with allow_writer():
        return [run.pk for run in services.nightly_recompute()]


@shared_task(name="saleor_crm_plugin.rfm_recompute", ignore_result=True)
def rfm_recompute_task(channel_id: str, full: bool = False) -> int:
    """On demand (GraphQL mutation, CLI ``--async``): one channel now."""
    with allow_writer():
        return services.recompute(channel_id, full=full).pk
