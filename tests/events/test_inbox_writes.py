"""What the inbox writes costs PostgreSQL: commits that need no flush wait, lean indexes.

The worker's batch commits with ``synchronous_commit = off`` (its work is lost whole or not at
all, and a lost batch is still pending, so it is processed again); the acknowledgement's insert
never does. A linger look that runs as its own transaction does not wait for a flush either,
and one inside a caller's transaction leaves the caller's setting alone. The inbox's rare
queries still find their rows through the partial indexes of migration 0016.
"""

from __future__ import annotations

import pytest
from django.db import connection, connections
from django.db.models import Q

from saleor_crm_plugin.customers import batch
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from tests.events.test_inbox import event_of

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's commit and index settings"
)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_the_batch_commits_without_waiting_for_the_flush_and_only_the_batch(monkeypatch):
    seen: list[str] = []
    apply_batch = batch.apply_batch

    def recording(events):  # runs inside the batch's transaction
        seen.append(synchronous_commit())
        return apply_batch(events)

    monkeypatch.setattr(batch, "apply_batch", recording)
    assert inbox.store_event(event_of("ORDER_CREATED"), kick=False) is not None
    assert synchronous_commit() == "on"

    assert inbox.process_pending() == 1

    assert seen == ["off"]
    assert synchronous_commit() == "on"  # ``SET LOCAL``: gone with the batch's transaction
    assert InboxEvent.objects.get().status == InboxStatus.DONE


@pytest.mark.django_db
def test_a_batch_inside_a_callers_transaction_leaves_its_setting_alone(monkeypatch):
    """``SET LOCAL`` would last until the caller's commit and cover the caller's writes."""
    seen: list[str] = []
    apply_batch = batch.apply_batch

    def recording(events):
        seen.append(synchronous_commit())
        return apply_batch(events)

    monkeypatch.setattr(batch, "apply_batch", recording)
    inbox.store_event(event_of("ORDER_CREATED"), kick=False)
    assert connection.in_atomic_block  # the test's own transaction

    assert inbox.process_pending() == 1

    assert seen == ["on"]
    assert synchronous_commit() == "on"


@pytest.mark.django_db(transaction=True)
def test_the_acknowledgements_insert_keeps_the_synchronous_commit(monkeypatch):
    """``store_webhook`` runs in the request's autocommit: its commit waits for the flush."""
    settings_seen: list[str] = []
    execute = inbox._execute_server_bound

    def recording(db, sql, params, **kwargs):
        settings_seen.append(synchronous_commit())
        return execute(db, sql, params, **kwargs)

    monkeypatch.setattr(inbox, "_execute_server_bound", recording)
    stored = inbox.store_webhook(
        dedupe_key="k1",
        kind="order_created",
        saleor_api_url="https://x/",
        raw_body="{}",
        kick=False,
    )
    assert stored and settings_seen == ["on"]
    assert "synchronous_commit" not in inbox._raw_insert_statement()


@pytest.mark.django_db(transaction=True)
def test_looks_of_their_own_skip_the_flush_wait_and_answer_as_before():
    inbox.store_event(event_of("ORDER_CREATED"), kick=False)
    inbox.store_event(event_of("ORDER_FULLY_PAID"), kick=False)
    assert not connection.in_atomic_block

    assert inbox._unclaimed_exists() is True
    assert inbox._unclaimed_batch(10)[0] == 2
    count, waited, any_unclaimed = inbox._linger_probe(10)
    assert (count, any_unclaimed) == (2, True) and waited >= 0
    for statement in (
        inbox._unclaimed_exists_statement(True),
        inbox._unclaimed_batch_statement(True),
        inbox._linger_probe_statement(True),
    ):
        assert "set_config('synchronous_commit', 'off', true)" in statement
    assert synchronous_commit() == "on"  # each look's setting ended with its transaction

    inbox.process_pending()
    assert inbox._unclaimed_exists() is False
    assert inbox._linger_probe(10) == (0, 0.0, False)


@pytest.mark.django_db
def test_looks_inside_a_callers_transaction_leave_its_setting_alone():
    inbox.store_event(event_of("ORDER_CREATED"), kick=False)
    assert connection.in_atomic_block  # the test's own transaction

    assert inbox._unclaimed_exists() is True
    assert inbox._unclaimed_batch(10)[0] == 1
    assert inbox._linger_probe(10)[0] == 1

    assert synchronous_commit() == "on"
    for statement in (
        inbox._unclaimed_exists_statement(False),
        inbox._unclaimed_batch_statement(False),
        inbox._linger_probe_statement(False),
    ):
        assert "synchronous_commit" not in statement


def index_scans(queryset) -> str:
    """The plan of ``queryset`` with sequential scans priced out: which indexes can serve it."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        try:
            return queryset.explain()
        finally:
            cursor.execute("SET LOCAL enable_seqscan = on")


@pytest.mark.django_db
def test_the_rare_queries_are_served_by_the_partial_indexes():
    """A query the partial indexes cannot prove they cover (an empty subject, a status they
    leave out) would fall back to reading the whole inbox: these are the ones we run."""
    redact = InboxEvent.objects.filter(
        Q(pk__in=[]) | Q(subject_user_id="VXNlcjo0Ng==") | Q(subject_email_hash="ab" * 32)
    ).exclude(status=InboxStatus.PENDING)
    plan = index_scans(redact)
    assert "crm_inbox_subj_user_set_idx" in plan and "crm_inbox_subj_email_set_idx" in plan

    assert "crm_inbox_unresolved_idx" in index_scans(
        InboxEvent.objects.filter(status=InboxStatus.FAILED)
    )
    assert "crm_inbox_pending_idx" in index_scans(
        InboxEvent.objects.filter(status=InboxStatus.PENDING)
    )
    from datetime import timedelta

    from django.utils import timezone

    prune = InboxEvent.objects.filter(
        status__in=[InboxStatus.DONE, InboxStatus.INVALID],
        received_at__lt=timezone.now() - timedelta(days=30),
    )
    assert "crm_inbox_received_brin" in index_scans(prune)


@pytest.mark.django_db
def test_a_subject_set_by_the_worker_is_found_for_erasure():
    """The acknowledgement's raw row has both subject columns empty (in neither partial
    index); once the worker fills them, erasure finds the row through them."""
    inbox.store_webhook(
        dedupe_key="raw-1",
        kind="order_created",
        saleor_api_url="https://x/",
        raw_body="{}",
        kick=False,
    )
    row = InboxEvent.objects.get()
    assert (row.subject_user_id, row.subject_email_hash) == ("", "")
    assert inbox.redact_for_subject(user_id="VXNlcjo0Ng==", email_hash="") == 0
    InboxEvent.objects.filter(pk=row.pk).update(
        subject_user_id="VXNlcjo0Ng==", status=InboxStatus.DONE
    )
    assert inbox.redact_for_subject(user_id="VXNlcjo0Ng==", email_hash="") == 1
    assert InboxEvent.objects.get().payload == inbox.REDACTED_PAYLOAD


@pytest.mark.django_db(transaction=True)
def test_the_acknowledgement_keeps_one_cursor_per_connection(monkeypatch):
    """The ack's INSERT runs on a psycopg cursor kept for the connection when it does not go
    through libpq's prepared call (inside a transaction, prepares off, after a failure: the
    direct way is switched off here): the same rows and answers as with a new cursor per
    call, and a new connection gets a new cursor."""
    monkeypatch.setattr(inbox, "_insert_prepared_directly", lambda db, params: None)

    def store(key: str) -> bool:
        return inbox.store_webhook(
            dedupe_key=key,
            kind="order_created",
            saleor_api_url="https://x/",
            raw_body="{}",
            kick=False,
        )

    assert store("k1") and store("k2") and not store("k1")
    raw, cursor = connections["default"].__dict__["_crm_ack_cursor"]
    assert raw is connection.connection and not cursor.closed
    assert store("k3") and connections["default"].__dict__["_crm_ack_cursor"][1] is cursor
    connection.close()
    assert store("k4") and not store("k3")
    assert connections["default"].__dict__["_crm_ack_cursor"][1] is not cursor
    rows = InboxEvent.objects.order_by("dedupe_key")
    assert [(r.dedupe_key, r.status, r.source) for r in rows] == [
        (k, InboxStatus.PENDING, inbox.WEBHOOK_SOURCE) for k in ("k1", "k2", "k3", "k4")
    ]
