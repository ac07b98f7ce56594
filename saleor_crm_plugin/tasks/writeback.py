from __future__ import annotations

from celery import shared_task

from saleor_crm_plugin.core.compat import allow_writer
from saleor_crm_plugin.writeback import services


@shared_task(name="saleor_crm_plugin.flush_metadata", ignore_result=True)
def flush_metadata_task() -> int:
    with allow_writer():
        return services.flush().sent
