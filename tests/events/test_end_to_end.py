"""Captured deliveries through the real endpoint, inbox and processing."""

import pytest

from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.customers.projection import apply_event
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.handlers import handle_event
from saleor_crm_plugin.events.models import InboxEvent
from tests.captures import all_captures, load_capture
from tests.state import projection_state

CAPTURES = all_captures()


def reference_state():
    for capture in CAPTURES:
        apply_event(translate_webhook(capture.event_header, capture.raw_body, capture.api_url))
    state = projection_state()
    Order.objects.all().delete()
    Customer.objects.all().delete()
    return state


@pytest.mark.django_db
def test_deliveries_are_processed_after_commit(
    saleor_instance, deliver, django_capture_on_commit_callbacks
):
    expected = reference_state()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for capture in CAPTURES:
            assert deliver(capture).status_code == 200

    assert len(callbacks) == len(CAPTURES)
    assert set(InboxEvent.objects.values_list("status", flat=True)) == {"done"}
    assert projection_state() == expected


@pytest.mark.django_db
def test_five_replays_through_the_endpoint_equal_one_pass(
    saleor_instance, deliver, django_capture_on_commit_callbacks
):
    expected = reference_state()

    with django_capture_on_commit_callbacks(execute=True):
        statuses = [deliver(c).json()["status"] for _ in range(5) for c in CAPTURES]

    assert statuses.count("accepted") == len(CAPTURES)
    assert statuses.count("duplicate") == 4 * len(CAPTURES)
    assert InboxEvent.objects.count() == len(CAPTURES)
    assert projection_state() == expected


@pytest.mark.django_db
def test_five_reapplications_of_every_event_equal_one_pass():
    # Below the dedupe: the handlers themselves are idempotent.
    expected = reference_state()
    events = [translate_webhook(c.event_header, c.raw_body, c.api_url) for c in CAPTURES]

    for _ in range(5):
        for event in events:
            handle_event(event)

    assert projection_state() == expected


@pytest.mark.django_db
def test_forged_signature_stores_nothing(
    saleor_instance, deliver, django_capture_on_commit_callbacks
):
    capture = load_capture("ORDER_FULLY_PAID", "subscription")
    forged = capture.raw_body.replace(b'"amount": 45.97', b'"amount": 4597.0', 1)
    assert forged != capture.raw_body

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(capture, body=forged)

    assert response.status_code == 401
    assert InboxEvent.objects.count() == 0
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_signed_but_unreadable_delivery_is_kept_not_dropped(
    saleor_instance, client, django_capture_on_commit_callbacks
):
    # A correctly signed body we cannot read (e.g. a subscription query changed by hand in
    # the dashboard). Saleor would drop it on a 4xx, so we answer 200 and keep it.
    from saleor_crm_plugin.app.models import SaleorInstance
    from saleor_crm_plugin.demo.signing import DemoSigner

    signer = DemoSigner.generate()
    SaleorInstance.objects.filter(pk=saleor_instance.pk).update(jwks=signer.jwks)
    body = b'{"issuedAt": "2026-11-23T07:40:44+00:00", "unexpected": true}'

    response = client.post(
        "/api/webhooks/saleor",
        data=body,
        content_type="application/json",
        headers={
            "Saleor-Event": "order_created",
            "Saleor-Api-Url": "http://127.0.0.1:8000/graphql/",
            "Saleor-Signature": signer.sign(body),
        },
    )

    # The ack does not read the body: it is accepted as it is, and the worker, which
    # translates it, keeps it as ``invalid`` with the reason instead of retrying it.
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    row = InboxEvent.objects.get()
    assert (row.status, row.raw_body, row.payload) == ("pending", body.decode(), {})
    inbox.process_pending()
    row.refresh_from_db()
    assert (row.status, row.raw_body, row.attempts) == ("invalid", body.decode(), 1)
    assert "has no order" in row.last_error
    assert inbox.process_pending() == 0
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_unconsumed_event_is_acknowledged_and_ignored(saleor_instance, deliver):
    capture = load_capture("ORDER_CREATED", "subscription")

    response = deliver(capture, headers={"Saleor-Event": "product_created"})

    # Signed by the registered Saleor but not an event we consume (e.g. a webhook an operator
    # added): acknowledged so Saleor does not retry, nothing stored.
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert InboxEvent.objects.count() == 0
