"""Loyalty beat tasks: thin wrappers, the rules live in ``saleor_crm_plugin.loyalty``."""

from __future__ import annotations

from celery import shared_task

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.compat import allow_writer


@shared_task(name="saleor_crm_plugin.loyalty_confirm_pending", ignore_result=True)
def loyalty_confirm_pending_task() -> int:
    """Pending order points whose return window closed become spendable."""
    from saleor_crm_plugin.loyalty import services

    with allow_writer():
        return services.confirm_due(batch=crm_settings.LOYALTY_CONFIRM_BATCH)


@shared_task(name="saleor_crm_plugin.loyalty_expire_points", ignore_result=True)
def loyalty_expire_points_task() -> int:
    """Warn first (lots entering the warning window), then expire what is due."""
    from saleor_crm_plugin.loyalty import expiry

    with allow_writer():
        expiry.warn_expiring()
        return expiry.expire_due(batch=crm_settings.LOYALTY_CONFIRM_BATCH).expired_lots


@shared_task(name="saleor_crm_plugin.loyalty_nightly", ignore_result=True)
def loyalty_nightly_task() -> int:
    """Tier holds end at midnight, birthdays start then."""
    from saleor_crm_plugin.loyalty import services

    with allow_writer():
        changed = services.evaluate_tiers()
        services.award_birthdays()
        return changed


@shared_task(name="saleor_crm_plugin.loyalty_settle_redemptions", ignore_result=True)
def loyalty_settle_redemptions_task() -> int:
    from saleor_crm_plugin.loyalty import redemption

    with allow_writer():
        return redemption.settle_reservations()
