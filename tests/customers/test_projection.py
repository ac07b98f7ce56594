"""The projection converges to one state whatever the delivery order or repetition."""

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from saleor_crm_plugin.customers.models import Customer, CustomerChannelStats, CustomerLink, Order
from saleor_crm_plugin.customers.projection import apply_event
from saleor_crm_plugin.events.from_webhook import translate_webhook
from tests.captures import all_captures
from tests.state import projection_state

ADA = "VXNlcjo0Ng=="
DELETED = "VXNlcjo0Nw=="
ORDER_21 = "T3JkZXI6Y2ZhOTlkZWUtZGM1Yy00M2VhLTk5MzktNzM1NmY1MGMzNTY2"
ORDER_22 = "T3JkZXI6MWM0YzBlYTAtNjllNC00NmY5LTgwYmMtNjBhNTVhZWNjZjEz"
ORDER_23 = "T3JkZXI6NmEyOGFkNjgtMjU2My00YWE1LTk5YTYtZjFkNjEwNGRmODUz"


def events(styles=None):
    return [translate_webhook(c.event_header, c.raw_body, c.api_url) for c in all_captures(styles)]


def apply_all(items):
    for event in items:
        apply_event(event)


@pytest.mark.django_db
def test_subscription_events_build_the_customer_360():
    apply_all(events(["subscription"]))

    ada = Customer.objects.get(saleor_user_id=ADA)
    # customerUpdate renamed her "Augusta Ada"
    assert (ada.email, ada.first_name, ada.last_name) == (
        "ada.lovelace@example.com",
        "Augusta Ada",
        "Lovelace",
    )
    assert ada.country_code == "US"
    # orders 21 (paid 45.97) and 22 (fully refunded) count; spend is what Saleor kept
    assert ada.order_count == 2
    stats = CustomerChannelStats.objects.get(customer=ada)
    assert (stats.channel_slug, stats.currency, stats.order_count) == ("default-channel", "USD", 2)
    assert stats.total_spent == Decimal("45.970")
    assert stats.total_refunded == Decimal("50.000")
    assert ada.first_order_at == datetime(2026, 11, 23, 7, 40, 39, 851643, tzinfo=UTC)

    order_21 = Order.objects.get(saleor_order_id=ORDER_21)
    assert (order_21.number, order_21.status, order_21.charge_status) == ("21", "FULFILLED", "FULL")
    assert order_21.customer_link == CustomerLink.USER_ID
    assert [
        (line.product_name, line.quantity, line.quantity_fulfilled) for line in order_21.lines.all()
    ] == [
        ("Monospace Tee", 2, 2),
        ("Apple Juice", 3, 3),
    ]
    assert order_21.paid_at is not None and order_21.fulfilled_at is not None

    order_22 = Order.objects.get(saleor_order_id=ORDER_22)
    assert (order_22.total_charged, order_22.total_refunded) == (
        Decimal("0.000"),
        Decimal("50.000"),
    )

    guest_order = Order.objects.get(saleor_order_id=ORDER_23)
    assert guest_order.status == "CANCELED"
    assert guest_order.customer.is_guest
    assert guest_order.customer.email == "guest.buyer@example.com"
    assert guest_order.customer.order_count == 0  # a cancelled order is no sale


@pytest.mark.django_db
def test_customer_deleted_erases_personal_data():
    apply_all(events(["subscription"]))

    deleted = Customer.objects.get(saleor_user_id=DELETED)
    assert deleted.is_erased
    assert (deleted.email, deleted.first_name, deleted.last_name) == ("", "", "")
    assert deleted.metadata == {}
    assert len(deleted.email_hash) == 64


@pytest.mark.django_db
def test_legacy_events_alone_attach_orders_by_email():
    apply_all(events(["legacy"]))

    ada = Customer.objects.get(saleor_user_id=ADA)
    assert ada.order_count == 2
    assert set(ada.orders.values_list("customer_link", flat=True)) == {CustomerLink.EMAIL}
    order_21 = Order.objects.get(saleor_order_id=ORDER_21)
    assert order_21.total_charged == Decimal("45.970")  # inferred from ORDER_FULLY_PAID
    assert Order.objects.get(saleor_order_id=ORDER_22).total_refunded == Decimal("50.000")


@pytest.mark.django_db
@pytest.mark.parametrize("styles", [["subscription"], ["legacy"], ["subscription", "legacy"]])
def test_twice_reversed_and_shuffled_give_the_same_state(styles):
    items = events(styles)
    apply_all(items)
    once = projection_state()

    apply_all(items)
    assert projection_state() == once

    for permutation in (list(reversed(items)), random.Random(7).sample(items, len(items))):
        Order.objects.all().delete()
        Customer.objects.all().delete()
        apply_all(permutation)
        apply_all(permutation)
        assert projection_state() == once


@pytest.mark.django_db
def test_many_random_orders_converge():
    items = events()
    apply_all(items)
    expected = projection_state()
    rng = random.Random(2026)
    for _ in range(10):
        Order.objects.all().delete()
        Customer.objects.all().delete()
        apply_all(rng.sample(items, len(items)))
        assert projection_state() == expected


@pytest.mark.django_db
def test_order_events_before_customer_created_merge_into_one_customer():
    items = events(["legacy"])
    orders_first = [e for e in items if e.order] + [e for e in items if e.customer]

    apply_all(orders_first)

    assert Customer.objects.filter(email="ada.lovelace@example.com").count() == 1
    assert Customer.objects.get(saleor_user_id=ADA).order_count == 2


@pytest.mark.django_db
def test_customer_event_profile_beats_names_copied_onto_orders():
    items = events(["subscription"])
    created = next(e for e in items if e.kind == "customer_created")  # firstName "Ada"
    orders = [e for e in items if e.order]  # carry user.firstName "Augusta Ada", newer

    apply_all([*orders, created])
    assert Customer.objects.get(saleor_user_id=ADA).first_name == "Ada"

    Customer.objects.all().delete()
    apply_all([created, *orders])
    assert Customer.objects.get(saleor_user_id=ADA).first_name == "Ada"


@pytest.mark.django_db
def test_late_events_cannot_resurrect_an_erased_customer():
    items = events(["subscription"])
    deletion = next(e for e in items if e.kind == "customer_deleted")
    apply_event(deletion)

    created = translate_webhook(
        "customer_updated",
        deletion_capture_body(),
        "http://127.0.0.1:8000/graphql/",
    )
    apply_event(created)

    customer = Customer.objects.get(saleor_user_id=DELETED)
    assert customer.email == ""
    assert customer.first_name == ""


def deletion_capture_body() -> bytes:
    from tests.captures import load_capture

    # The CUSTOMER_DELETED body describes the user as it was: replaying it as an update
    # must not write the e-mail back.
    return load_capture("CUSTOMER_DELETED", "subscription").raw_body


# -- product type (item feature for recommendations) -----------------------------------------

PRODUCT_TYPE = {"id": "UHJvZHVjdFR5cGU6Nw==", "slug": "t-shirt"}


def _with_product_type(event: str) -> tuple[bytes, str, str]:
    """A copy of a captured subscription payload whose first line's product carries a
    ``productType`` (the fragment now asks for it; the captures predate that)."""
    import copy
    import json

    from tests.captures import load_capture

    capture = load_capture(event, "subscription")
    body = copy.deepcopy(capture.body)
    body["order"]["lines"][0]["variant"]["product"]["productType"] = dict(PRODUCT_TYPE)
    return json.dumps(body).encode(), capture.event_header, capture.api_url


@pytest.mark.django_db
def test_product_type_flows_from_the_subscription_payload_to_the_order_line():
    raw, header, api_url = _with_product_type("ORDER_FULLY_PAID")

    event = translate_webhook(header, raw, api_url)
    first, second = event.order.lines
    assert (first.product_type_id, first.product_type_slug) == ("UHJvZHVjdFR5cGU6Nw==", "t-shirt")
    assert (second.product_type_id, second.product_type_slug) == (None, None)
    # survives the inbox round trip
    stored = type(event).from_dict(event.to_dict())
    assert stored.order.lines[0].product_type_slug == "t-shirt"

    apply_event(event)
    lines = list(Order.objects.get(saleor_order_id=ORDER_21).lines.all())
    assert [(line.product_type_id, line.product_type_slug) for line in lines] == [
        ("UHJvZHVjdFR5cGU6Nw==", "t-shirt"),
        ("", ""),
    ]

    # A later capture without productType (unknown) does not erase what is known.
    apply_all(events(["subscription"]))
    line = Order.objects.get(saleor_order_id=ORDER_21).lines.get(product_name="Monospace Tee")
    assert (line.product_type_id, line.product_type_slug) == ("UHJvZHVjdFR5cGU6Nw==", "t-shirt")


@pytest.mark.django_db
def test_captures_without_product_type_leave_it_unknown():
    items = events()
    for event in items:
        for line in event.order.lines if event.order and event.order.lines else ():
            assert (line.product_type_id, line.product_type_slug) == (None, None)
    apply_all(items)
    from saleor_crm_plugin.customers.models import OrderLine

    assert OrderLine.objects.exists()
    assert not OrderLine.objects.exclude(product_type_id="", product_type_slug="").exists()


def test_stored_events_from_before_product_types_still_load():
    raw, header, api_url = _with_product_type("ORDER_FULLY_PAID")
    data = translate_webhook(header, raw, api_url).to_dict()
    for line in data["order"]["lines"]:
        del line["product_type_id"], line["product_type_slug"]

    from saleor_crm_plugin.events.types import CrmEvent

    event = CrmEvent.from_dict(data)
    assert all(line.product_type_id is None for line in event.order.lines)


# -- product attributes (item features for recommendations) ----------------------------------

ATTRIBUTES = [
    {"attribute": {"slug": "size"}, "values": [{"slug": "xl"}]},
    {"attribute": {"slug": "colour"}, "values": [{"slug": "white"}, {"slug": "black"}]},
    {"attribute": {"slug": "material"}, "values": []},
]


def _with_attributes(event: str) -> tuple[bytes, str, str]:
    """A copy of a captured subscription payload whose first line's product carries Saleor's
    ``attributes`` (the fragment now asks for them; the captures predate that) and whose
    second line's product has none."""
    import copy
    import json

    from tests.captures import load_capture

    capture = load_capture(event, "subscription")
    body = copy.deepcopy(capture.body)
    body["order"]["lines"][0]["variant"]["product"]["attributes"] = copy.deepcopy(ATTRIBUTES)
    body["order"]["lines"][1]["variant"]["product"]["attributes"] = []
    return json.dumps(body).encode(), capture.event_header, capture.api_url


@pytest.mark.django_db
def test_attributes_flow_from_the_subscription_payload_to_the_order_line():
    raw, header, api_url = _with_attributes("ORDER_FULLY_PAID")

    event = translate_webhook(header, raw, api_url)
    first, second = event.order.lines
    assert first.attributes == ("colour:black", "colour:white", "size:xl")
    assert second.attributes == ()
    stored = type(event).from_dict(event.to_dict())
    assert stored.order.lines[0].attributes == first.attributes
    assert stored.order.lines[1].attributes == ()

    apply_event(event)
    apply_event(event)  # replayed: no change
    lines = Order.objects.get(saleor_order_id=ORDER_21).lines.order_by("product_name")
    by_name = {line.product_name: line.attributes for line in lines}
    assert by_name["Monospace Tee"] == ["colour:black", "colour:white", "size:xl"]
    assert sorted(by_name.values(), key=len)[0] == []

    # Later captures without attributes (unknown) do not erase what is known.
    apply_all(events(["subscription"]))
    line = Order.objects.get(saleor_order_id=ORDER_21).lines.get(product_name="Monospace Tee")
    assert line.attributes == ["colour:black", "colour:white", "size:xl"]


@pytest.mark.django_db
def test_attributes_fill_in_when_they_arrive_after_the_line():
    apply_all(events(["subscription"]))
    raw, header, api_url = _with_attributes("ORDER_FULLY_PAID")
    apply_event(translate_webhook(header, raw, api_url))
    line = Order.objects.get(saleor_order_id=ORDER_21).lines.get(product_name="Monospace Tee")
    assert line.attributes == ["colour:black", "colour:white", "size:xl"]


def test_captures_and_old_stored_events_leave_attributes_unknown():
    for event in events():
        for line in event.order.lines if event.order and event.order.lines else ():
            assert line.attributes is None
    raw, header, api_url = _with_attributes("ORDER_FULLY_PAID")
    data = translate_webhook(header, raw, api_url).to_dict()
    for line in data["order"]["lines"]:
        del line["attributes"]
    restored = type(translate_webhook(header, raw, api_url)).from_dict(data)
    assert [line.attributes for line in restored.order.lines] == [None, None]
