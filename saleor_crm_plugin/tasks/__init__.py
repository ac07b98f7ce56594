"""Celery tasks. Saleor autodiscovers ``<plugin package>.tasks``, so every task module is
imported here."""

from saleor_crm_plugin.tasks.ingest import process_inbox_task, prune_inbox_task, sweep_inbox_task
from saleor_crm_plugin.tasks.loyalty import (
    loyalty_confirm_pending_task,
    loyalty_expire_points_task,
    loyalty_nightly_task,
    loyalty_settle_redemptions_task,
)
from saleor_crm_plugin.tasks.recommendations import (
    retrain_recommendations_if_due_task,
    sync_recommendation_catalogue_task,
    train_recommendations_task,
)
from saleor_crm_plugin.tasks.rfm import rfm_nightly_task, rfm_recompute_task
from saleor_crm_plugin.tasks.writeback import flush_metadata_task

__all__ = [
    "flush_metadata_task",
    "loyalty_confirm_pending_task",
    "loyalty_expire_points_task",
    "loyalty_nightly_task",
    "loyalty_settle_redemptions_task",
    "process_inbox_task",
    "prune_inbox_task",
    "retrain_recommendations_if_due_task",
    "rfm_nightly_task",
    "rfm_recompute_task",
    "sweep_inbox_task",
    "sync_recommendation_catalogue_task",
    "train_recommendations_task",
]
