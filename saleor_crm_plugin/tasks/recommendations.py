"""Recommendation training on the ``ml`` queue: nightly, and early after enough new orders.

The queue is also set on the tasks themselves so plugin mode (Saleor's Celery app, without
our ``CELERY_TASK_ROUTES``) routes them to the ML workers too.

Every worker imports every task module at start-up (Celery's autodiscovery, and Saleor's), so
the training code (numpy, scipy, LightFM: a fifth of an ingest worker's start-up) is imported
by these tasks when they run, not with the module.
"""

from __future__ import annotations

import logging

from celery import shared_task

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.compat import allow_writer
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError

logger = logging.getLogger(__name__)


@shared_task(name="saleor_crm_plugin.train_recommendations", queue="ml", ignore_result=True)
def train_recommendations_task(trigger: str = "schedule") -> int | None:
    """Returns the run id, or None when another run was already in progress or
    recommendations are switched off."""
    from saleor_crm_plugin.recommendations import services

    if not crm_settings.RECS_ENABLED:
        return None
    with allow_writer():
        try:
            return services.train_model(trigger=trigger).pk
        except RecommendationError as exc:
            if exc.code != RecommendationErrorCode.TRAINING_IN_PROGRESS:
                raise
            logger.info("recommendation training skipped: %s", exc.message)
            return None


@shared_task(
    name="saleor_crm_plugin.retrain_recommendations_if_due", queue="ml", ignore_result=True
)
def retrain_recommendations_if_due_task() -> int | None:
    """Cheap check (two counts) run every 15 minutes; trains when ``RECS_RETRAIN_AFTER_ORDERS``
    new paid orders arrived since the last run."""
    from saleor_crm_plugin.recommendations import services

    if not crm_settings.RECS_ENABLED:
        return None
    with allow_writer():
        if not services.retrain_due():
            return None
    return train_recommendations_task(trigger="new_orders")


@shared_task(name="saleor_crm_plugin.sync_recommendation_catalogue", queue="ml", ignore_result=True)
def sync_recommendation_catalogue_task() -> int | None:
    """Nightly availability sync before training; skipped without a Saleor to ask."""
    from saleor_crm_plugin.core.saleor_target import get_saleor_client
    from saleor_crm_plugin.recommendations import catalogue
    from saleor_crm_plugin.recommendations.models import ModelArtefact

    if not crm_settings.RECS_ENABLED:
        return None
    with allow_writer():
        client = get_saleor_client()
        if client is None:
            logger.info("catalogue sync skipped: no Saleor API configured")
            return None
        artefact = ModelArtefact.objects.filter(run__is_active=True).only("item_ids").first()
        known = artefact.item_ids if artefact else []
        report = catalogue.sync_availability(client, known_products=known)
        return report.channels
