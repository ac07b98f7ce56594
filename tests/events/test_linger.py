"""The kicked drain (``process_kicked``): it lingers for a fuller batch while its kick key is
set, stops after a short batch, hands the key over without leaving a committed row behind,
and never counts rows another drain has claimed."""

from __future__ import annotations

import functools
import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from saleor_crm_plugin.events.types import CrmEvent
from saleor_crm_plugin.tasks.ingest import process_inbox_task
from tests.events.test_contention import demo_events as read_demo_events


@functools.cache
def _demo_events(count: int) -> tuple[CrmEvent, ...]:
    return tuple(read_demo_events(count))


def demo_events(count: int) -> list[CrmEvent]:
    return list(_demo_events(count))


@pytest.fixture
def kicks(settings, monkeypatch) -> list[int]:
    """Coalesced kicks on the tests' cache, with the published tasks recorded, not run."""
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0.05
    cache.delete(inbox.KICK_CACHE_KEY)
    sent: list[int] = []
    monkeypatch.setattr(process_inbox_task, "delay", lambda: sent.append(1))
    yield sent
    cache.delete(inbox.KICK_CACHE_KEY)


def store(events: list[CrmEvent], django_capture_on_commit_callbacks) -> None:
    """Store as the webhook does: the kick runs when the row commits."""
    with django_capture_on_commit_callbacks(execute=True):
        for event in events:
            inbox.store_event(event)


def record_batches(monkeypatch) -> list[int]:
    sizes: list[int] = []
    original = inbox._process_batch

    def counted(size: int) -> int:
        sizes.append(original(size))
        return sizes[-1]

    monkeypatch.setattr(inbox, "_process_batch", counted)
    return sizes


@pytest.mark.django_db
def test_a_kicked_drain_lingers_until_its_batch_fills(
    settings, kicks, monkeypatch, django_capture_on_commit_callbacks
):
    settings.CRM_INBOX_BATCH_SIZE = 6
    settings.CRM_INBOX_LINGER_SECONDS = 30
    events = demo_events(6)
    store(events[:2], django_capture_on_commit_callbacks)
    assert kicks == [1]
    later = iter([events[2:4], events[4:6]])
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # rows keep arriving while the drain waits
        naps.append(seconds)
        store(next(later), django_capture_on_commit_callbacks)

    monkeypatch.setattr(inbox.time, "sleep", sleep)
    batches = record_batches(monkeypatch)
    locking_counts: list[int] = []
    unclaimed_batch = inbox._unclaimed_batch
    monkeypatch.setattr(
        inbox, "_unclaimed_batch", lambda size: locking_counts.append(size) or unclaimed_batch(size)
    )

    assert inbox.process_kicked() == 6
    assert len(naps) == 2 and all(0 < nap <= 0.05 for nap in naps)
    # The looks while the batch filled locked no row they counted; only the full one did.
    assert locking_counts == [6]
    assert batches[0] == 6  # one full batch, not the two rows there when it started
    assert kicks == [1]  # rows committed while it lingered sent no kick: it took them
    assert set(InboxEvent.objects.values_list("status", "attempts")) == {("done", 1)}


@pytest.mark.django_db
def test_a_kicked_drain_does_not_wait_for_rows_that_already_waited_long_enough(
    settings, kicks, monkeypatch, django_capture_on_commit_callbacks
):
    settings.CRM_INBOX_LINGER_SECONDS = 0.5
    store(demo_events(3), django_capture_on_commit_callbacks)
    InboxEvent.objects.update(available_at=timezone.now() - timedelta(seconds=0.6))
    monkeypatch.setattr(inbox.time, "sleep", lambda s: pytest.fail("lingered"))
    batches = record_batches(monkeypatch)

    assert inbox.process_kicked() == 3
    assert batches == [3]  # a short batch ends the drain: no second claim


@pytest.mark.django_db
def test_a_kicked_drain_with_nothing_to_do_neither_waits_nor_keeps_the_key(
    settings, kicks, monkeypatch
):
    settings.CRM_INBOX_LINGER_SECONDS = 0.5
    monkeypatch.setattr(inbox.time, "sleep", lambda s: pytest.fail("lingered"))
    assert inbox.process_kicked() == 0
    assert cache.get(inbox.KICK_CACHE_KEY) is None  # the next row kicks again


def test_the_kick_outlives_the_linger(settings):
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0.05
    settings.CRM_INBOX_LINGER_SECONDS = 0
    assert inbox._kick_ttl() == 1
    settings.CRM_INBOX_LINGER_SECONDS = 0.5
    assert inbox._kick_ttl() == 2
    settings.CRM_INBOX_LINGER_SECONDS = 2.5
    assert inbox._kick_ttl() == 4
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 7
    assert inbox._kick_ttl() == 7


@pytest.mark.django_db
def test_the_kick_key_is_set_for_the_kick_ttl(settings, kicks, monkeypatch):
    settings.CRM_INBOX_LINGER_SECONDS = 2.5
    timeouts: list[int] = []
    monkeypatch.setattr(inbox, "_claim_kick", lambda timeout: timeouts.append(timeout) or True)
    inbox.enqueue_processing()
    assert timeouts == [4] and kicks == [1]


# Every moment of the drain where a request's row can commit: before and after each look at
# the inbox, each claim of the key and each batch, in turn.
HAND_OFF_STEPS = range(24)


@pytest.mark.django_db
@pytest.mark.parametrize("linger", [0, 30])
@pytest.mark.parametrize("step", HAND_OFF_STEPS)
def test_no_committed_row_is_left_without_a_drain(
    settings, kicks, monkeypatch, django_capture_on_commit_callbacks, step, linger
):
    """A row committed at any moment of a kicked drain is processed by it, or kicked a drain
    of its own, or found the key set by a drain still to claim: running every drain that
    was queued leaves nothing pending, each row applied once."""
    settings.CRM_INBOX_LINGER_SECONDS = linger
    aged = timezone.now() - timedelta(seconds=linger + 1)
    # A pause ages the rows past the linger: the drain claims after one pause.
    monkeypatch.setattr(inbox.time, "sleep", lambda s: InboxEvent.objects.update(available_at=aged))
    events = demo_events(4)
    store(events[:3], django_capture_on_commit_callbacks)
    late = events[3]
    calls = 0

    def at_each_step(function):
        def wrapped(*args, **kwargs):
            nonlocal calls
            if calls == step:
                store([late], django_capture_on_commit_callbacks)
            result = function(*args, **kwargs)
            if calls + 1 == step:
                store([late], django_capture_on_commit_callbacks)
            calls += 2
            return result

        return wrapped

    for name in (
        "_claim_kick",
        "_unclaimed_exists",
        "_unclaimed_batch",
        "_linger_probe",
        "_process_batch",
    ):
        monkeypatch.setattr(inbox, name, at_each_step(getattr(inbox, name)))

    kicks.clear()
    handled = inbox.process_kicked()
    if calls <= step:
        store([late], django_capture_on_commit_callbacks)  # after the drain: a plain kick
    drains = 1
    while kicks:  # the drains that were queued meanwhile
        kicks.pop()
        handled += inbox.process_kicked()
        drains += 1
    assert handled == 4
    assert drains <= 2
    assert set(InboxEvent.objects.values_list("status", "attempts")) == {("done", 1)}


@pytest.mark.django_db(transaction=True)
def test_rows_another_drain_has_claimed_are_neither_counted_nor_polled(settings):
    """Two drains used to poll each other's open batches: the final look counted rows the
    other had claimed, so the drain claimed (nothing) and looked again until it committed."""
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0.05
    for event in demo_events(5):
        inbox.store_event(event, kick=False)
    claimed, release = threading.Event(), threading.Event()

    def other_drain() -> None:
        try:
            with transaction.atomic():
                list(InboxEvent.objects.select_for_update().filter(status=InboxStatus.PENDING))
                claimed.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_drain)
    thread.start()
    assert claimed.wait(10)
    batches: list[int] = []
    original = inbox._process_batch
    try:
        assert inbox._unclaimed_exists() is False
        assert inbox._unclaimed_batch(100) == (0, 0.0)
        count, _, any_unclaimed = inbox._linger_probe(100)
        assert (count, any_unclaimed) == (5, False)  # in view, but none of them ours to take
        inbox._process_batch = lambda size: batches.append(original(size)) or batches[-1]
        started = time.monotonic()
        assert inbox.process_pending() == 0
        assert inbox.process_kicked() == 0
    finally:
        inbox._process_batch = original
        release.set()
        thread.join()
    assert time.monotonic() - started < 5
    assert batches == [0, 0]  # one claim each, no polling
    assert inbox._unclaimed_batch(100)[0] == 5  # released: visible again
    cache.delete(inbox.KICK_CACHE_KEY)
