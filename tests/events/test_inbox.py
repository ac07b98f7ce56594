from datetime import timedelta

import pytest
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from tests.captures import all_captures, load_capture


def event_of(name, style="subscription"):
    capture = load_capture(name, style)
    return translate_webhook(capture.event_header, capture.raw_body, capture.api_url)


@pytest.mark.django_db
def test_store_is_idempotent_on_the_dedupe_key():
    event = event_of("ORDER_CREATED")

    first = inbox.store_event(event, kick=False)
    second = inbox.store_event(event, kick=False)

    assert first is not None and second is None
    assert InboxEvent.objects.count() == 1
    row = InboxEvent.objects.get()
    assert (row.kind, row.source, row.status) == ("order_created", "subscription", "pending")
    assert row.subject_user_id == "VXNlcjo0Ng=="
    assert len(row.subject_email_hash) == 64


@pytest.mark.django_db
def test_event_without_dedupe_key_is_refused():
    event = event_of("ORDER_CREATED").with_dedupe_key("")

    with pytest.raises(ValueError, match="dedupe key"):
        inbox.store_event(event)


@pytest.mark.django_db
def test_process_pending_applies_every_event_once():
    for capture in all_captures(["subscription"]):
        inbox.store_event(
            translate_webhook(capture.event_header, capture.raw_body, capture.api_url), kick=False
        )

    assert inbox.process_pending(batch_size=3) == 11
    assert inbox.process_pending() == 0
    assert set(InboxEvent.objects.values_list("status", flat=True)) == {"done"}
    assert Order.objects.count() == 3
    assert Customer.objects.get(saleor_user_id="VXNlcjo0Ng==").order_count == 2


@pytest.mark.django_db
def test_failing_event_backs_off_then_fails_without_blocking_others(monkeypatch, settings):
    settings.CRM_INBOX_MAX_ATTEMPTS = 2
    good = inbox.store_event(event_of("ORDER_CREATED"), kick=False)
    bad = inbox.store_event(event_of("CUSTOMER_CREATED"), kick=False)
    InboxEvent.objects.filter(pk=bad.pk).update(payload={**bad.payload, "kind": "no_such_kind"})

    inbox.process_pending()

    bad.refresh_from_db()
    good.refresh_from_db()
    assert good.status == InboxStatus.DONE
    assert (bad.status, bad.attempts) == (InboxStatus.PENDING, 1)
    assert "no_such_kind" in bad.last_error
    assert bad.available_at > timezone.now()
    assert inbox.process_pending() == 0  # not retried before its backoff

    InboxEvent.objects.filter(pk=bad.pk).update(available_at=timezone.now() - timedelta(seconds=1))
    inbox.process_pending()
    bad.refresh_from_db()
    assert (bad.status, bad.attempts) == (InboxStatus.FAILED, 2)

    # an operator fixes the cause and retries failed events
    InboxEvent.objects.filter(pk=bad.pk).update(payload={**bad.payload, "kind": "customer_created"})
    assert inbox.requeue_failed() == 1
    inbox.process_pending()
    bad.refresh_from_db()
    assert bad.status == InboxStatus.DONE
    assert Customer.objects.filter(saleor_user_id="VXNlcjo0Ng==").exists()


@pytest.mark.django_db
def test_failed_event_leaves_no_partial_state():
    row = inbox.store_event(event_of("ORDER_FULLY_PAID"), kick=False)
    payload = row.payload
    payload["order"]["lines"][1]["quantity"] = -3  # violates the line's check; after the order row
    InboxEvent.objects.filter(pk=row.pk).update(payload=payload)

    inbox.process_pending()

    row.refresh_from_db()
    assert row.status == InboxStatus.PENDING and row.attempts == 1
    assert Order.objects.count() == 0  # the savepoint rolled the whole event back
    assert Customer.objects.count() == 0


@pytest.mark.django_db
def test_sweep_reenqueues_only_stranded_events(monkeypatch):
    kicks = []
    monkeypatch.setattr(inbox, "enqueue_processing", lambda: kicks.append(1))
    fresh = inbox.store_event(event_of("ORDER_CREATED"), kick=False)
    old = inbox.store_event(event_of("ORDER_CONFIRMED"), kick=False)
    InboxEvent.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(minutes=5))

    assert inbox.sweep(older_than_seconds=60) == 1
    assert kicks == [1]
    InboxEvent.objects.filter(pk=old.pk).update(status=InboxStatus.DONE)
    assert inbox.sweep(older_than_seconds=60) == 0
    assert kicks == [1]
    assert fresh.pk


@pytest.mark.django_db
def test_prune_deletes_only_old_processed_rows():
    old = inbox.store_event(event_of("ORDER_CREATED"), kick=False)
    recent = inbox.store_event(event_of("ORDER_CONFIRMED"), kick=False)
    pending_old = inbox.store_event(event_of("ORDER_PAID"), kick=False)
    InboxEvent.objects.filter(pk__in=[old.pk, recent.pk]).update(status=InboxStatus.DONE)
    InboxEvent.objects.filter(pk__in=[old.pk, pending_old.pk]).update(
        received_at=timezone.now() - timedelta(days=40)
    )

    assert inbox.prune(retention_days=30) == 1
    assert set(InboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, pending_old.pk}


@pytest.mark.django_db
def test_enqueue_failure_is_swallowed_and_the_event_stays_pending(
    monkeypatch, deliver, saleor_instance, django_capture_on_commit_callbacks
):
    from saleor_crm_plugin.tasks import ingest

    def broker_down():
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(ingest.process_inbox_task, "delay", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(load_capture("ORDER_CREATED", "subscription"))

    assert response.status_code == 200
    assert InboxEvent.objects.get().status == InboxStatus.PENDING


@pytest.mark.django_db
def test_erasure_redacts_stored_payloads_about_the_customer():
    for name in ("CUSTOMER_DELETED",):
        for style in ("subscription", "legacy"):
            inbox.store_event(event_of(name, style), kick=False)
    unrelated = inbox.store_event(event_of("ORDER_CREATED"), kick=False)

    inbox.process_pending()

    redacted = InboxEvent.objects.exclude(pk=unrelated.pk)
    assert [r.payload for r in redacted] == [{"redacted": True}, {"redacted": True}]
    assert (
        InboxEvent.objects.get(pk=unrelated.pk).payload["order"]["user_email"]
        == "ada.lovelace@example.com"
    )
    assert (
        b"to.be.deleted"
        not in str(list(InboxEvent.objects.values_list("payload", "raw_body"))).encode()
    )


@pytest.mark.django_db
def test_failing_domain_handler_keeps_the_projection_and_retries_the_event(monkeypatch):
    from saleor_crm_plugin.events import handlers

    calls = []

    def flaky(event):
        calls.append(event.kind)
        if len(calls) <= 2:  # the bulk attempt, then the per-event one
            raise RuntimeError("domain down")

    monkeypatch.setattr(handlers, "_domain_handlers", lambda: ((flaky, None),))
    row = inbox.store_event(event_of("ORDER_FULLY_PAID"), kick=False)

    inbox.process_pending()

    row.refresh_from_db()
    assert row.status == InboxStatus.PENDING and "domain down" in row.last_error
    assert Order.objects.count() == 1  # the projection pass committed
    InboxEvent.objects.filter(pk=row.pk).update(available_at=timezone.now())
    inbox.process_pending()
    row.refresh_from_db()
    assert row.status == InboxStatus.DONE
    assert calls == ["order_fully_paid"] * 3
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_domain_handlers_see_the_whole_batch_projected(monkeypatch):
    from saleor_crm_plugin.events import handlers

    seen = []
    monkeypatch.setattr(
        handlers,
        "_domain_handlers",
        lambda: (
            (lambda event: seen.append(Customer.objects.get(order_count=2).order_count), None),
        ),
    )
    for capture in all_captures(["subscription"]):
        inbox.store_event(
            translate_webhook(capture.event_header, capture.raw_body, capture.api_url), kick=False
        )

    inbox.process_pending()

    # even the handler of the first event saw the aggregates of the complete batch
    assert len(seen) == 11 and set(seen) == {2}


@pytest.mark.django_db
def test_lock_conflict_with_another_worker_is_retried_at_once(monkeypatch):
    import psycopg
    from django.db import OperationalError

    from saleor_crm_plugin.events import handlers

    failures = []

    def deadlocked_once(event):
        if not failures:
            failures.append(1)
            try:
                raise psycopg.errors.DeadlockDetected("deadlock detected")
            except psycopg.Error as exc:
                raise OperationalError("deadlock detected") from exc

    monkeypatch.setattr(handlers, "_domain_handlers", lambda: ((deadlocked_once, None),))
    row = inbox.store_event(event_of("ORDER_CREATED"), kick=False)

    inbox.process_pending()

    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (InboxStatus.DONE, 1, "")


@pytest.mark.django_db
def test_coalesced_kicks_never_strand_a_committed_row(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    from saleor_crm_plugin.tasks.ingest import process_inbox_task

    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0.05
    cache.delete(inbox.KICK_CACHE_KEY)
    kicks = []
    monkeypatch.setattr(process_inbox_task, "delay", lambda: kicks.append(1))
    captures = all_captures(["subscription"])
    events = [translate_webhook(c.event_header, c.raw_body, c.api_url) for c in captures]

    with django_capture_on_commit_callbacks(execute=True):
        for event in events[:4]:
            inbox.store_event(event)
    assert len(kicks) == 1  # one queued drain covers the burst

    # A row committed while the key is set sends no kick; the drain still finds it, because
    # it clears the key and looks again before it stops.
    original = inbox._process_batch
    late = events[4]

    def batch_then_late_row(size):
        handled = original(size)
        if (
            not handled
            and late is not None
            and not InboxEvent.objects.filter(dedupe_key=late.dedupe_key).exists()
        ):
            cache.add(inbox.KICK_CACHE_KEY, 1, 5)  # another request queued a drain meanwhile
            with django_capture_on_commit_callbacks(execute=True):
                inbox.store_event(late)
        return handled

    monkeypatch.setattr(inbox, "_process_batch", batch_then_late_row)
    inbox.process_pending()
    assert len(kicks) == 1  # the late row did not kick (a drain was queued) ...
    assert not InboxEvent.objects.filter(status=InboxStatus.PENDING).exists()  # ... nor wait

    with django_capture_on_commit_callbacks(execute=True):
        inbox.store_event(events[5])
    assert len(kicks) == 2  # the drain cleared the key: the next row kicks again


@pytest.mark.django_db
def test_batch_domain_handler_covers_the_batch_or_falls_back_event_by_event(monkeypatch):
    from saleor_crm_plugin.events import handlers

    batches, singles = [], []

    def one(event):
        singles.append(event.kind)

    def many(events):
        batches.append(len(events))
        if len(batches) == 1:
            raise RuntimeError("bulk path broken")

    monkeypatch.setattr(handlers, "_domain_handlers", lambda: ((one, many),))
    for capture in all_captures(["subscription"])[:4]:
        inbox.store_event(
            translate_webhook(capture.event_header, capture.raw_body, capture.api_url), kick=False
        )
    inbox.process_pending()
    assert batches == [4] and len(singles) == 4  # the failed bulk call was redone per event
    assert set(InboxEvent.objects.values_list("status", flat=True)) == {"done"}

    for capture in all_captures(["subscription"])[4:6]:
        inbox.store_event(
            translate_webhook(capture.event_header, capture.raw_body, capture.api_url), kick=False
        )
    inbox.process_pending()
    assert batches == [4, 2] and len(singles) == 4  # the bulk call covered the whole batch


@pytest.mark.django_db
def test_batch_redaction_finds_erased_customers_by_user_id_and_by_email_hash():
    from saleor_crm_plugin.core.privacy import email_hash

    now = timezone.now()
    Customer.objects.create(email="", saleor_user_id="U-gone", erased_at=now)
    Customer.objects.create(email="", email_hash=email_hash("guest@x.io"), erased_at=now)
    Customer.objects.create(email="kept@x.io", saleor_user_id="U-kept")
    rows = []
    for n, (user_id, address) in enumerate(
        [("U-gone", ""), ("", "guest@x.io"), ("U-kept", "kept@x.io"), ("", "")]
    ):
        rows.append(
            InboxEvent.objects.create(
                dedupe_key=f"k{n}",
                kind="customer_updated",
                payload={"about": n},
                status=InboxStatus.DONE,
                subject_user_id=user_id,
                subject_email_hash=email_hash(address) if address else "",
            )
        )
    inbox._redact_erased(rows)
    payloads = [row.payload for row in InboxEvent.objects.order_by("pk")]
    assert payloads == [inbox.REDACTED_PAYLOAD, inbox.REDACTED_PAYLOAD, {"about": 2}, {"about": 3}]
