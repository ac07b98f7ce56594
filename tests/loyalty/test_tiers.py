"""Tiers: qualification per period, holds (no demotion before the period ends), multipliers,
history."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from saleor_crm_plugin.loyalty import services
from saleor_crm_plugin.loyalty.config import ProgramConfig, TierRule
from saleor_crm_plugin.loyalty.models import PointLot, TierChange
from saleor_crm_plugin.loyalty.tiers import tier_at
from tests.loyalty.builders import account, apply, days, order_event, order_id

TIERS = (
    TierRule("bronze", "Bronze", Decimal(0), Decimal(1)),
    TierRule("silver", "Silver", Decimal(100), Decimal(2)),
    TierRule("gold", "Gold", Decimal(300), Decimal(3)),
)


def at(y, m, d):
    return datetime(y, m, d, 12, tzinfo=UTC)


def config(period):
    return ProgramConfig(tier_period=period, tiers=TIERS)


def test_lifetime_tier_follows_the_lifetime_metric():
    history = [(at(2020, 1, 1), Decimal(80)), (at(2024, 1, 1), Decimal(30))]

    assert tier_at(at(2021, 1, 1), history, config("lifetime")).tier.code == "bronze"
    status = tier_at(at(2026, 1, 1), history, config("lifetime"))
    assert (status.tier.code, status.metric, status.next_tier.code, status.to_next) == (
        "silver",
        Decimal(110),
        "gold",
        Decimal(190),
    )
    assert status.held_until is None


def test_calendar_year_tier_holds_through_the_next_year():
    history = [(at(2025, 3, 1), Decimal(150))]
    cfg = config("calendar_year")

    in_2025 = tier_at(at(2025, 6, 1), history, cfg)
    assert (in_2025.tier.code, in_2025.held_until) == ("silver", datetime(2027, 1, 1, tzinfo=UTC))
    in_2026 = tier_at(at(2026, 12, 31), history, cfg)
    assert (in_2026.tier.code, in_2026.metric) == ("silver", Decimal(0))  # held, not requalified
    assert tier_at(at(2027, 1, 1), history, cfg).tier.code == "bronze"


def test_rolling_tier_holds_12_months_after_last_qualifying():
    history = [
        (at(2025, 1, 10), Decimal(60)),
        (at(2025, 2, 10), Decimal(60)),  # 120 in the window: silver from here
    ]
    cfg = config("rolling_12_months")

    status = tier_at(at(2026, 1, 20), history, cfg)  # window now holds only the February order
    assert (status.tier.code, status.metric) == ("silver", Decimal(60))
    assert status.held_until == at(2026, 2, 10)
    assert tier_at(at(2026, 2, 11), history, cfg).tier.code == "bronze"


def test_points_beyond_at_are_ignored_and_progress_is_capped():
    history = [(at(2025, 1, 1), Decimal(50)), (at(2030, 1, 1), Decimal(1000))]

    status = tier_at(at(2025, 6, 1), history, config("lifetime"))
    assert (status.tier.code, status.progress) == ("bronze", Decimal("0.500"))


TIER_SETTINGS = {
    "tier_period": "lifetime",
    "tiers": [
        {"code": "bronze", "name": "Bronze", "threshold": 0, "multiplier": 1},
        {"code": "silver", "name": "Silver", "threshold": 150, "multiplier": "1.5"},
    ],
}


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=TIER_SETTINGS)
def test_multiplier_applies_to_orders_after_qualifying_whatever_the_event_order():
    base = timezone.now() - days(30)
    orders = [order_event(n, created=base + days(n)) for n in (1, 2, 3)]  # 90 spend each

    apply(*reversed(orders))

    points = {
        lot.order_id: (lot.base_points, str(lot.multiplier), lot.points)
        for lot in PointLot.objects.filter(source="order")
    }
    assert points == {
        order_id(1): (90, "1.000", 90),
        order_id(2): (90, "1.000", 90),  # 90 spent before it: still bronze
        order_id(3): (90, "1.500", 135),  # 180 spent before it: silver
    }
    acct = account()
    assert (acct.tier, acct.pending) == ("silver", 315)
    assert list(TierChange.objects.values_list("from_tier", "to_tier")) == [
        ("", "bronze"),
        ("bronze", "silver"),
    ]
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**TIER_SETTINGS, "tier_period": "rolling_12_months"})
def test_nightly_evaluation_demotes_only_after_the_hold():
    now = timezone.now()
    apply(order_event(1, created=now - days(300)), order_event(2, created=now - days(299)))
    assert account().tier == "silver"

    assert services.evaluate_tiers(now=now + days(30)) == 0  # still held
    assert account().tier == "silver"
    assert services.evaluate_tiers(now=now + days(70)) == 1  # 12 months after qualifying

    acct = account()
    assert acct.tier == "bronze"
    last = TierChange.objects.filter(account=acct).last()
    assert (last.from_tier, last.to_tier, last.reason) == ("silver", "bronze", "nightly")


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**TIER_SETTINGS, "tier_basis": "points"})
def test_tiers_can_qualify_on_points():
    now = timezone.now()
    apply(order_event(1, created=now - days(3)), order_event(2, created=now - days(2)))

    assert account().tier == "silver"  # 180 base points
