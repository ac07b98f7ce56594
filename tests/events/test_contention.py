"""Two workers draining one inbox: a batch leaves the events whose order or customer another
worker's open batch holds for a later batch instead of waiting for that batch to commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from saleor_crm_plugin.customers import batch
from saleor_crm_plugin.demo.events import deliveries, read_rows
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from saleor_crm_plugin.events.types import CrmEvent
from tests.loyalty.builders import loyalty_state
from tests.state import projection_state

API = "https://demo.saleor.local/graphql/"


def demo_events(count: int) -> list[CrmEvent]:
    out = []
    for delivery in deliveries(read_rows()):
        out.append(translate_webhook(delivery.event.upper(), delivery.body, API))
        if len(out) == count:
            return out
    return out


@contextmanager
def other_worker_holding(
    keys: Sequence[str], *, release_after: float | None = None
) -> Iterator[None]:
    """Another connection with an open transaction holding the subject locks of ``keys`` (as
    another worker's batch does until it commits); released when the block ends, or after
    ``release_after`` seconds."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k",
                    [sorted({batch._lock_id(key) for key in keys})],
                )
                held.set()
                release.wait(release_after if release_after is not None else 30)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join()


def taken_elsewhere(keys: Sequence[str]) -> list[bool]:
    """For each key, whether some other transaction holds its subject lock (probed from a
    third connection, which gives back whatever it gets)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for key in keys:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [batch._lock_id(key)])
                    result.append(not cursor.fetchone()[0])
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result


def full_state() -> dict[str, object]:
    return {"projection": projection_state(), "loyalty": loyalty_state()}


@pytest.mark.django_db(transaction=True)
def test_contended_events_wait_for_a_later_batch_while_the_rest_goes_on():
    events = demo_events(80)
    for event in events:
        inbox.store_event(event, kick=False)
    inbox.process_pending()
    expected = full_state()
    call_command("flush", interactive=False, verbosity=0)

    for event in events:
        inbox.store_event(event, kick=False)
    busy = batch.subject_keys(events[0])
    contended = {e.dedupe_key for e in events if batch.subject_keys(e) & busy}
    assert 0 < len(contended) < len(events)

    with other_worker_holding(sorted(busy)):
        handled = inbox._process_batch(len(events))  # does not wait for the other worker
        pending = InboxEvent.objects.filter(status=InboxStatus.PENDING)
        left = set(pending.values_list("dedupe_key", flat=True))
        attempts = set(pending.values_list("attempts", flat=True))

    assert handled == len(events) - len(contended)
    assert left == contended  # left as they were: not attempted, not backed off
    assert attempts == {0}
    inbox.process_pending()
    assert set(InboxEvent.objects.values_list("status", flat=True)) == {"done"}
    assert set(InboxEvent.objects.values_list("attempts", flat=True)) == {1}
    assert full_state() == expected


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_every_event_is_contended_waits_instead_of_spinning():
    events = demo_events(30)
    for event in events:
        inbox.store_event(event, kick=False)
    keys = sorted(set().union(*(batch.subject_keys(e) for e in events)))

    with other_worker_holding(keys, release_after=0.5):
        started = time.monotonic()
        handled = inbox._process_batch(len(events))
        waited = time.monotonic() - started

    assert handled == len(events)
    assert waited >= 0.4
    assert set(InboxEvent.objects.values_list("status", flat=True)) == {"done"}


@pytest.mark.django_db(transaction=True)
def test_try_lock_keeps_the_locks_of_free_events_and_gives_back_all_when_none_is_free():
    events = demo_events(80)
    first = events[0]
    busy = batch.subject_keys(first)
    free_event = next(e for e in events if not batch.subject_keys(e) & busy)
    # keys of the first event that the other worker does not hold
    held_by_other = sorted(busy)[:1]
    spare = sorted(busy - set(held_by_other))
    assert spare

    with other_worker_holding(held_by_other):
        with transaction.atomic():
            assert batch.try_lock_subjects([first, free_event]) == [False, True]
            mine = sorted(batch.subject_keys(free_event))
            assert taken_elsewhere(mine) == [True] * len(mine)
        with transaction.atomic():
            assert batch.try_lock_subjects([first]) == [False]
            # the spare keys it took were given back: a waiting worker holds nothing
            assert taken_elsewhere(spare) == [False] * len(spare)


@pytest.mark.django_db(transaction=True)
def test_raw_rows_left_for_later_are_translated_once(monkeypatch):
    from saleor_crm_plugin.events.from_webhook import event_kind_from_header, webhook_dedupe_key

    stored = []
    for delivery in deliveries(read_rows()):
        kind = event_kind_from_header(delivery.event.upper())
        inbox.store_webhook(
            dedupe_key=webhook_dedupe_key(API, kind, delivery.body),
            kind=kind.value,
            saleor_api_url=API,
            raw_body=delivery.body.decode(),
            kick=False,
        )
        stored.append(translate_webhook(delivery.event.upper(), delivery.body, API))
        if len(stored) == 60:
            break
    calls = []
    original = inbox.translate_stored_webhook

    def counted(*args, **kwargs):
        calls.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(inbox, "translate_stored_webhook", counted)
    busy = batch.subject_keys(stored[0])
    with other_worker_holding(sorted(busy)):
        inbox._process_batch(len(stored))
    left = set(
        InboxEvent.objects.filter(status=InboxStatus.PENDING).values_list("dedupe_key", flat=True)
    )
    assert left
    inbox.process_pending()

    assert sorted(calls) == sorted(e.dedupe_key for e in stored)  # each exactly once
    rows = InboxEvent.objects.filter(dedupe_key__in=left)
    assert {r.status for r in rows} == {"done"}
    # the subject columns of the rows translated in the first batch were saved all the same
    by_key = {e.dedupe_key: e for e in stored}
    for row in rows:
        assert row.object_id == by_key[row.dedupe_key].object_id
        assert row.source == "subscription"
