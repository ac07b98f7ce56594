"""Storefront events, clicks and revenue attributed per placement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.recommendations import tracking
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.recommendations.models import StorefrontEvent, StorefrontEventKind
from tests.recommendations.builders import CHANNEL, product

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ada(db):
    return Customer.objects.create(email="ada@example.com", saleor_user_id="U1")


@pytest.mark.django_db
def test_track_event_stores_a_view(ada):
    event = tracking.track_event(
        kind="product_viewed", product_id=product(1), customer=ada, channel_id=CHANNEL
    )

    stored = StorefrontEvent.objects.get()
    assert stored.pk == event.pk
    assert (stored.kind, stored.product_id, stored.customer_id, stored.channel_id) == (
        StorefrontEventKind.PRODUCT_VIEWED,
        product(1),
        ada.pk,
        CHANNEL,
    )


@pytest.mark.django_db
def test_a_retried_beacon_is_stored_once(ada):
    first = tracking.record_click(
        product_id=product(1), placement="home", customer=ada, client_event_id="evt-1"
    )
    again = tracking.record_click(
        product_id=product(1), placement="home", customer=ada, client_event_id="evt-1"
    )

    assert first.pk == again.pk
    assert StorefrontEvent.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "code", "field", "message"),
    [
        (
            {"kind": "bought"},
            RecommendationErrorCode.INVALID,
            "kind",
            "Unknown event kind 'bought'.",
        ),
        (
            {"product_id": ""},
            RecommendationErrorCode.REQUIRED,
            "product_id",
            "productId is required.",
        ),
        (
            {"anonymous_id": "x" * 65},
            RecommendationErrorCode.INVALID,
            "anonymous_id",
            "anonymous_id must be at most 64 characters.",
        ),
        (
            {"occurred_at": datetime(2999, 1, 1, tzinfo=UTC)},
            RecommendationErrorCode.INVALID,
            "occurred_at",
            "occurredAt is in the future.",
        ),
    ],
)
def test_bad_events_are_refused_and_nothing_is_stored(kwargs, code, field, message):
    arguments = {"kind": "product_viewed", "product_id": product(1), **kwargs}

    with pytest.raises(RecommendationError) as excinfo:
        tracking.track_event(**arguments)

    assert (excinfo.value.code, excinfo.value.field, excinfo.value.message) == (
        code,
        field,
        message,
    )
    assert not StorefrontEvent.objects.exists()


@pytest.mark.django_db
def test_a_click_needs_a_placement(ada):
    with pytest.raises(RecommendationError) as excinfo:
        tracking.record_click(product_id=product(1), placement="", customer=ada)

    assert (excinfo.value.code, excinfo.value.field) == (
        RecommendationErrorCode.REQUIRED,
        "placement",
    )


@pytest.mark.django_db
def test_an_unknown_run_id_does_not_lose_the_click(ada):
    event = tracking.record_click(product_id=product(1), placement="home", customer=ada, run_id=999)

    assert event.run_id is None


@pytest.mark.django_db
@freeze_time(NOW + timedelta(days=30))
def test_revenue_is_attributed_to_the_last_click_within_the_window(ada, orders):
    bob = Customer.objects.create(email="bob@example.com", saleor_user_id="U2")
    at = NOW
    for placement in ("home", "home", "cart"):
        tracking.track_event(
            kind="recommendation_shown", product_id=product(1), placement=placement, occurred_at=at
        )
    tracking.record_click(product_id=product(1), placement="home", customer=ada, occurred_at=at)
    tracking.record_click(
        product_id=product(1), placement="cart", customer=ada, occurred_at=at + timedelta(hours=1)
    )
    tracking.record_click(product_id=product(2), placement="home", customer=bob, occurred_at=at)
    # ada buys product 1 (3 units, 1 refunded) after both clicks: the cart click gets it
    orders.order(
        ada,
        [(product(1), 3), (product(9), 1)],
        at=at + timedelta(hours=2),
        refunded={product(1): 1},
        price=Decimal("10.000"),
    )
    # bob buys product 2 only after the 7-day window: not attributed
    orders.order(bob, [(product(2), 1)], at=at + timedelta(days=8))
    # a purchase before the click is not caused by it
    orders.order(ada, [(product(1), 1)], at=at - timedelta(days=1))

    stats = {s.placement: s for s in tracking.placement_performance(since=at - timedelta(days=2))}

    assert set(stats) == {"home", "cart"}
    assert (stats["home"].impressions, stats["home"].clicks) == (2, 2)
    assert stats["home"].click_through_rate == 1.0
    assert (stats["home"].attributed_orders, stats["home"].attributed_revenue) == (0, Decimal(0))
    assert (stats["cart"].impressions, stats["cart"].clicks) == (1, 1)
    assert stats["cart"].attributed_orders == 1
    assert stats["cart"].attributed_revenue == Decimal("20.000")  # 2 kept units of 10
