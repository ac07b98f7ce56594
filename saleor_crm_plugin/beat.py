"""Periodic work, expressed as a Celery beat schedule.

App mode puts ``BEAT_SCHEDULE`` into its Celery config. In plugin mode, Saleor builds its beat
schedule from ``settings.CELERY_BEAT_SCHEDULE``; ``register_beat_schedule`` (called from
``AppConfig.ready``) adds our entries there without overriding anything the deployer set.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab
from django.conf import settings

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "crm-sweep-inbox": {"task": "saleor_crm_plugin.sweep_inbox", "schedule": 60.0},
    "crm-flush-metadata": {"task": "saleor_crm_plugin.flush_metadata", "schedule": 30.0},
    "crm-prune-inbox": {
        "task": "saleor_crm_plugin.prune_inbox",
        "schedule": crontab(hour="3", minute="17"),
    },
    "crm-rfm-nightly": {
        "task": "saleor_crm_plugin.rfm_nightly",
        "schedule": crontab(hour="2", minute="41"),
    },
    "crm-loyalty-confirm-pending": {
        "task": "saleor_crm_plugin.loyalty_confirm_pending",
        "schedule": crontab(minute="*/15"),
    },
    "crm-loyalty-settle-redemptions": {
        "task": "saleor_crm_plugin.loyalty_settle_redemptions",
        "schedule": 300.0,
    },
    "crm-loyalty-expire-points": {
        "task": "saleor_crm_plugin.loyalty_expire_points",
        "schedule": crontab(hour="2", minute="7"),
    },
    "crm-loyalty-nightly": {
        "task": "saleor_crm_plugin.loyalty_nightly",
        "schedule": crontab(hour="2", minute="37"),
    },
    "crm-sync-recommendation-catalogue": {
        "task": "saleor_crm_plugin.sync_recommendation_catalogue",
        "schedule": crontab(hour="2", minute="11"),
    },
    "crm-train-recommendations": {
        "task": "saleor_crm_plugin.train_recommendations",
        "schedule": crontab(hour="3", minute="23"),
    },
    "crm-retrain-recommendations-if-due": {
        "task": "saleor_crm_plugin.retrain_recommendations_if_due",
        "schedule": 900.0,
    },
}


def register_beat_schedule() -> None:
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", None)
    if not isinstance(schedule, dict):
        return
    for name, entry in BEAT_SCHEDULE.items():
        schedule.setdefault(name, entry)
