"""Both payload styles of every captured event translate into our event, with the values
Saleor sent."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from saleor_crm_plugin.events.exceptions import PayloadError, UnsupportedEvent
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.types import CrmEvent, EventKind, EventSource
from tests.captures import all_captures, load_capture

ADA = "VXNlcjo0Ng=="
ORDER_21 = "T3JkZXI6Y2ZhOTlkZWUtZGM1Yy00M2VhLTk5MzktNzM1NmY1MGMzNTY2"
ORDER_22 = "T3JkZXI6MWM0YzBlYTAtNjllNC00NmY5LTgwYmMtNjBhNTVhZWNjZjEz"
CHANNEL = "Q2hhbm5lbDox"


def translate(event, style):
    capture = load_capture(event, style)
    return translate_webhook(capture.event_header, capture.raw_body, capture.api_url)


@pytest.mark.parametrize("capture", all_captures(), ids=lambda c: c.name)
def test_every_capture_translates_and_round_trips(capture):
    event = translate_webhook(capture.event_header, capture.raw_body, capture.api_url)

    assert event.kind == EventKind(capture.event.lower())
    assert event.source == (
        EventSource.LEGACY if capture.style == "legacy" else EventSource.SUBSCRIPTION
    )
    assert len(event.dedupe_key) == 64
    assert CrmEvent.from_dict(event.to_dict()) == event


def test_subscription_order_carries_payment_lines_and_user():
    event = translate("ORDER_FULLY_PAID", "subscription")
    order = event.order

    assert event.object_id == ORDER_21
    assert event.issued_at == datetime(2026, 11, 23, 7, 40, 44, 419029, tzinfo=UTC)
    assert order.updated_at == datetime(2026, 11, 23, 7, 40, 44, 387907, tzinfo=UTC)
    assert (order.number, order.status, order.channel_id, order.channel_slug, order.currency) == (
        "21",
        "UNFULFILLED",
        CHANNEL,
        "default-channel",
        "USD",
    )
    assert (order.user_id, order.user_email) == (ADA, "ada.lovelace@example.com")
    assert (order.user_first_name, order.user_last_name) == ("Augusta Ada", "Lovelace")
    assert order.total_gross == Decimal("45.970")
    assert order.payment.total_charged == Decimal("45.970")
    assert order.payment.total_refunded == Decimal("0.000")
    assert order.payment.charge_status == "FULL"
    assert order.paid_at == datetime(2026, 11, 23, 7, 40, 44, 294732, tzinfo=UTC)
    tee, juice = order.lines
    assert (tee.product_name, tee.quantity, tee.unit_price_gross, tee.sku) == (
        "Monospace Tee",
        2,
        Decimal("20.000"),
        "328223580",
    )
    assert (tee.product_id, tee.category_slug) == ("UHJvZHVjdDoxMzQ=", "t-shirts")
    assert (juice.quantity, juice.total_price_gross, juice.sku) == (3, Decimal("5.970"), None)
    assert tee.quantity_refunded is None  # this payload does not say


def test_legacy_order_has_no_user_id_and_infers_full_payment():
    event = translate("ORDER_FULLY_PAID", "legacy")
    order = event.order

    assert event.source == EventSource.LEGACY
    assert order.user_id is None
    assert order.user_email == "ada.lovelace@example.com"
    assert order.updated_at is None
    assert event.version_at == datetime(2026, 11, 23, 7, 40, 44, 363675, tzinfo=UTC)
    assert order.payment.total_charged == Decimal("45.970")
    assert order.payment.inferred is True
    assert [line.unit_price_net for line in order.lines] == [Decimal("20.000"), Decimal("1.990")]
    assert [line.quantity_fulfilled for line in order.lines] == [0, 0]


def test_partial_refund_keeps_charged_net_of_refund():
    order = translate("ORDER_REFUNDED", "subscription").order

    assert order.saleor_order_id == ORDER_22
    assert (order.payment.total_charged, order.payment.total_refunded) == (
        Decimal("40.000"),
        Decimal("10.000"),
    )
    assert order.payment.charge_status == "PARTIAL"


def test_legacy_partial_refund_says_nothing_about_amounts():
    assert translate("ORDER_REFUNDED", "legacy").order.payment is None


def test_full_refund_both_styles_agree_on_refunded_total():
    subscription = translate("ORDER_FULLY_REFUNDED", "subscription").order.payment
    legacy = translate("ORDER_FULLY_REFUNDED", "legacy").order.payment

    assert subscription.total_refunded == legacy.total_refunded == Decimal("50.000")
    assert subscription.total_charged == legacy.total_charged == Decimal("0.000")


def test_fulfilment_dates_and_quantities():
    subscription = translate("ORDER_FULFILLED", "subscription").order
    legacy = translate("ORDER_FULFILLED", "legacy").order

    assert subscription.status == legacy.status == "FULFILLED"
    assert [line.quantity_fulfilled for line in subscription.lines] == [2, 3]
    assert [line.quantity_fulfilled for line in legacy.lines] == [2, 3]
    assert [line.quantity_refunded for line in subscription.lines] == [0, 0]
    assert subscription.fulfilled_at == datetime(2026, 11, 23, 7, 41, 3, 639444, tzinfo=UTC)
    assert legacy.fulfilled_at == datetime(2026, 11, 23, 7, 41, 3, 639000, tzinfo=UTC)


def test_guest_cancelled_order():
    for style in ("subscription", "legacy"):
        order = translate("ORDER_CANCELLED", style).order
        assert order.status == "CANCELED"
        assert order.user_id is None
        assert order.user_email == "guest.buyer@example.com"
        assert order.cancelled_at is not None


def test_customer_styles_agree_on_profile():
    subscription = translate("CUSTOMER_CREATED", "subscription").customer
    legacy = translate("CUSTOMER_CREATED", "legacy").customer

    for customer in (subscription, legacy):
        assert customer.saleor_user_id == ADA
        assert customer.email == "ada.lovelace@example.com"
        assert (customer.first_name, customer.last_name) == ("Ada", "Lovelace")
        assert customer.country_code == "US"
        assert customer.language_code == "en"
        assert customer.metadata == {"crm_source": "reference-harness"}
    assert subscription.is_confirmed is False
    assert legacy.is_confirmed is None


def test_retried_delivery_has_the_same_dedupe_key_and_distinct_events_differ():
    keys = {translate(e, "subscription").dedupe_key for e in ("ORDER_CREATED", "ORDER_CONFIRMED")}
    assert len(keys) == 2
    assert (
        translate("ORDER_CREATED", "legacy").dedupe_key
        == translate("ORDER_CREATED", "legacy").dedupe_key
    )


def test_unknown_event_is_unsupported():
    capture = load_capture("ORDER_CREATED", "subscription")
    with pytest.raises(UnsupportedEvent):
        translate_webhook("checkout_created", capture.raw_body, capture.api_url)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"42",
        b"[]",
        b'[{"type": "Order"}]',
        b'{"issuedAt": "2026-01-01T00:00:00Z"}',
        b"{}",
    ],
)
def test_unreadable_bodies_raise_payload_error(body):
    with pytest.raises(PayloadError):
        translate_webhook("order_created", body, "http://127.0.0.1:8000/graphql/")
