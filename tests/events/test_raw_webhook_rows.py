"""The webhook acknowledges without translating: it stores the raw body, and the worker
translates it when it claims the row. These tests prove the ack never translates, that the
worker's translation fills what the ack left empty, and that the result (projection, inbox
columns, redaction, dedupe) is what translating in the ack gave."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.events import from_webhook, inbox
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from tests.captures import CAPTURED_API_URL, all_captures, load_capture
from tests.loyalty.builders import loyalty_state
from tests.state import projection_state

CAPTURES = all_captures()
# What the worker fills on a raw row; the ack used to fill them from its translation.
SUBJECT_COLUMNS = (
    "kind",
    "source",
    "saleor_api_url",
    "object_id",
    "issued_at",
    "subject_user_id",
    "subject_email_hash",
)


def _inbox_columns() -> dict[str, tuple]:
    return {
        row["dedupe_key"]: tuple(row[c] for c in SUBJECT_COLUMNS)
        for row in InboxEvent.objects.values("dedupe_key", *SUBJECT_COLUMNS)
    }


def _store_translated(captures) -> None:
    """The previous ingestion: translate in the ack, store the event's JSON."""
    for capture in captures:
        event = translate_webhook(capture.event_header, capture.raw_body, capture.api_url)
        inbox.store_event(event, kick=False)


def _outcome(deliver, raw=(), translated=()) -> tuple[dict, dict]:
    """Projection, loyalty and inbox columns after storing and processing, rolled back after
    so several orders can be compared in one test."""
    with transaction.atomic():
        _store_translated(translated)
        for capture in raw:
            assert deliver(capture).json() == {"status": "accepted"}
        inbox.process_pending(batch_size=500)
        assert set(InboxEvent.objects.values_list("status", flat=True)) == {"done"}
        state = {"projection": projection_state(), "loyalty": loyalty_state()}
        columns = _inbox_columns()
        transaction.set_rollback(True)
    return state, columns


@pytest.fixture
def count_translations(monkeypatch):
    calls: list[str] = []
    real = from_webhook._translate

    def counted(kind, raw_body, api_url):
        calls.append(kind.value)
        return real(kind, raw_body, api_url)

    monkeypatch.setattr(from_webhook, "_translate", counted)
    return calls


@pytest.mark.django_db
def test_ack_stores_the_raw_body_without_translating(saleor_instance, deliver, count_translations):
    capture = load_capture("ORDER_FULLY_PAID", "subscription")

    assert deliver(capture).json() == {"status": "accepted"}

    assert count_translations == []
    row = InboxEvent.objects.get()
    expected = translate_webhook(capture.event_header, capture.raw_body, capture.api_url)
    assert row.dedupe_key == expected.dedupe_key  # the same key as when the ack translated
    assert (row.kind, row.source, row.saleor_api_url, row.status) == (
        "order_fully_paid",
        "webhook",
        CAPTURED_API_URL,
        "pending",
    )
    assert (row.payload, row.raw_body) == ({}, capture.raw_body.decode())
    assert (row.object_id, row.issued_at, row.subject_user_id, row.subject_email_hash) == (
        "",
        None,
        "",
        "",
    )
    count_translations.clear()

    inbox.process_pending()

    assert count_translations == ["order_fully_paid"]
    row.refresh_from_db()
    assert (row.status, row.attempts, row.payload) == (InboxStatus.DONE, 1, {})
    assert row.raw_body == capture.raw_body.decode()  # kept for diagnosis until pruned
    assert row.processed_at is not None
    assert Order.objects.get().saleor_order_id == expected.object_id


@pytest.mark.django_db
def test_a_body_whose_translation_raises_is_accepted_then_invalid(
    saleor_instance, deliver, monkeypatch
):
    # The translation itself is made to fail: the ack cannot have called it.
    def broken(kind, raw_body, api_url):
        raise from_webhook.PayloadError("translation was called")

    monkeypatch.setattr(from_webhook, "_translate", broken)
    good = load_capture("ORDER_CREATED", "subscription")

    assert deliver(good).json() == {"status": "accepted"}
    assert deliver(good).json() == {"status": "duplicate"}

    assert inbox.process_pending() == 1
    row = InboxEvent.objects.get()
    assert (row.status, row.attempts, row.last_error) == (
        InboxStatus.INVALID,
        1,
        "translation was called",
    )
    assert inbox.process_pending() == 0  # never retried
    assert deliver(good).json() == {"status": "duplicate"}  # and still deduplicated


@pytest.mark.django_db
def test_unreadable_rows_do_not_block_their_batch(saleor_instance, client):
    from saleor_crm_plugin.app.models import SaleorInstance
    from saleor_crm_plugin.demo.signing import DemoSigner

    signer = DemoSigner.generate()
    SaleorInstance.objects.filter(pk=saleor_instance.pk).update(jwks=signer.jwks)
    bodies = {
        "not-json": b"{not json",
        "scalar": b"42",
        "no-order": b'{"issuedAt": "2026-11-23T07:40:44+00:00"}',
        "good": load_capture("ORDER_CREATED", "subscription").raw_body,
        "legacy-shape": b'[{"type": "Order"}]',
    }
    for body in bodies.values():
        response = client.post(
            "/api/webhooks/saleor",
            data=body,
            content_type="application/json",
            headers={
                "Saleor-Event": "ORDER_CREATED",
                "Saleor-Api-Url": CAPTURED_API_URL,
                "Saleor-Signature": signer.sign(body),
            },
        )
        assert response.json() == {"status": "accepted"}

    assert inbox.process_pending() == 5

    rows = {r.raw_body.encode(): r for r in InboxEvent.objects.all()}
    assert rows[bodies["good"]].status == InboxStatus.DONE
    for name in ("not-json", "scalar", "no-order", "legacy-shape"):
        row = rows[bodies[name]]
        assert row.status == InboxStatus.INVALID, name
        assert row.last_error and row.attempts == 1, name
    assert "Body is not JSON" in rows[bodies["not-json"]].last_error
    assert "object or array" in rows[bodies["scalar"]].last_error
    assert Order.objects.count() == 1
    assert inbox.process_pending() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "reason"),
    [(b'{"issuedAt": "\xff"}', "not JSON"), (b'{"a": "\x00"}', "NUL character")],
    ids=["not-utf8", "nul"],
)
def test_a_body_postgres_cannot_hold_as_text_is_invalid_at_once(
    saleor_instance, client, body, reason
):
    from saleor_crm_plugin.app.models import SaleorInstance
    from saleor_crm_plugin.demo.signing import DemoSigner

    signer = DemoSigner.generate()
    SaleorInstance.objects.filter(pk=saleor_instance.pk).update(jwks=signer.jwks)

    def post():
        return client.post(
            "/api/webhooks/saleor",
            data=body,
            content_type="application/json",
            headers={
                "Saleor-Event": "order_created",
                "Saleor-Api-Url": CAPTURED_API_URL,
                "Saleor-Signature": signer.sign(body),
            },
        )

    first, second = post(), post()

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "invalid" and reason in first.json()["reason"]
    row = InboxEvent.objects.get()
    assert row.status == InboxStatus.INVALID and reason in row.last_error
    assert inbox.process_pending() == 0


@pytest.mark.django_db
def test_duplicates_before_and_after_processing(saleor_instance, deliver):
    captures = all_captures(["subscription"])

    first = [deliver(c).json()["status"] for c in captures]
    before = [deliver(c).json()["status"] for c in captures]
    inbox.process_pending()
    state = projection_state()
    after = [deliver(c).json()["status"] for c in captures]
    inbox.process_pending()

    assert set(first) == {"accepted"}
    assert set(before) == set(after) == {"duplicate"}
    assert InboxEvent.objects.count() == len(captures)
    assert set(InboxEvent.objects.values_list("status", flat=True)) == {"done"}
    assert projection_state() == state


@pytest.mark.django_db
def test_every_capture_through_ack_and_worker_equals_translating_in_the_ack(
    saleor_instance, deliver
):
    # The previous path: the ack translated and stored the event's JSON.
    expected = _outcome(deliver, translated=CAPTURES)

    for order in (CAPTURES, CAPTURES[::-1], random.Random(7).sample(CAPTURES, len(CAPTURES))):
        # Same projection, ledgers, and inbox columns (the worker records the payload style
        # and subject the ack used to).
        assert _outcome(deliver, raw=order) == expected


@pytest.mark.django_db
def test_a_batch_mixing_raw_and_translated_rows(saleor_instance, deliver):
    expected = _outcome(deliver, translated=CAPTURES)

    # Plugin hooks and backfill still store translated events; webhooks store raw bodies.
    # One batch of 500 holds them all.
    for translated, raw in ((CAPTURES[::2], CAPTURES[1::2]), (CAPTURES[1::2], CAPTURES[::2])):
        assert _outcome(deliver, raw=raw, translated=translated) == expected


@pytest.mark.django_db
def test_a_pending_raw_row_about_a_customer_erased_meanwhile_ends_redacted(
    saleor_instance, deliver
):
    deleted = load_capture("CUSTOMER_DELETED", "subscription")
    # The same signed bytes under another event name: a customer update about the customer
    # who is then deleted, waiting in the inbox (backed off) while the deletion is processed.
    deliver(deleted, headers={"Saleor-Event": "customer_updated"})
    late = InboxEvent.objects.get()
    InboxEvent.objects.filter(pk=late.pk).update(available_at=timezone.now() + timedelta(hours=1))
    deliver(deleted)

    inbox.process_pending()

    erased = Customer.objects.get(saleor_user_id="VXNlcjo0Nw==")
    assert erased.is_erased
    late.refresh_from_db()
    assert late.status == InboxStatus.PENDING and b"to.be.deleted" in late.raw_body.encode()

    InboxEvent.objects.filter(pk=late.pk).update(available_at=timezone.now())
    inbox.process_pending()

    late.refresh_from_db()
    assert late.status == InboxStatus.DONE
    assert (late.payload, late.raw_body) == (inbox.REDACTED_PAYLOAD, "")
    assert late.subject_user_id == "VXNlcjo0Nw=="
    dump = str(list(InboxEvent.objects.values_list("payload", "raw_body"))).encode()
    assert b"to.be.deleted" not in dump and b"Temp" not in dump
    erased.refresh_from_db()
    assert erased.is_erased and erased.email == "" and erased.first_name == ""


@pytest.mark.django_db
def test_raw_rows_about_a_customer_erased_in_the_same_batch_are_redacted(saleor_instance, deliver):
    deleted = load_capture("CUSTOMER_DELETED", "subscription")
    deliver(deleted, headers={"Saleor-Event": "customer_updated"})
    deliver(deleted)
    deliver(load_capture("CUSTOMER_DELETED", "legacy"))
    unrelated = load_capture("ORDER_CREATED", "subscription")
    deliver(unrelated)

    inbox.process_pending()

    rows = InboxEvent.objects.order_by("pk")
    assert [r.status for r in rows] == ["done"] * 4
    assert [r.raw_body for r in rows[:3]] == ["", "", ""]
    assert rows[3].raw_body == unrelated.raw_body.decode()
    dump = str(list(InboxEvent.objects.values_list("payload", "raw_body"))).encode()
    assert b"to.be.deleted" not in dump


@pytest.mark.django_db
def test_a_raw_row_that_fails_to_project_is_findable_by_its_subject(
    saleor_instance, deliver, monkeypatch
):
    from saleor_crm_plugin.customers import batch

    def broken(event):
        raise RuntimeError("projection down")

    capture = load_capture("ORDER_CREATED", "subscription")
    deliver(capture)
    event = translate_webhook(capture.event_header, capture.raw_body, capture.api_url)

    with monkeypatch.context() as patched:
        patched.setattr(batch, "apply_batch", lambda events: False)
        patched.setattr(inbox, "project", broken)
        inbox.process_pending()

    row = InboxEvent.objects.get()
    assert (row.status, row.attempts) == (InboxStatus.PENDING, 1)
    assert "projection down" in row.last_error and row.available_at > timezone.now()
    # An erasure while it waits for its retry finds it (and would redact it once processed).
    assert row.subject_user_id == "VXNlcjo0Ng==" and len(row.subject_email_hash) == 64
    assert (row.source, row.object_id, row.issued_at) == (
        "subscription",
        event.object_id,
        event.issued_at,
    )

    InboxEvent.objects.filter(pk=row.pk).update(available_at=timezone.now())
    inbox.process_pending()
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (InboxStatus.DONE, 2, "")
    assert Order.objects.count() == 1
