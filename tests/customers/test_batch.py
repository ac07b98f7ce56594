"""The bulk projection must give exactly what the per-event projection gives."""

import random

import pytest
from django.utils import timezone

from saleor_crm_plugin.customers import batch, projection
from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.demo.events import deliveries, read_rows
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.types import EventKind
from tests.captures import all_captures
from tests.state import projection_state

API = "https://demo.saleor.local/graphql/"


def captured_events(styles=None):
    return [translate_webhook(c.event_header, c.raw_body, c.api_url) for c in all_captures(styles)]


def demo_events():
    return [translate_webhook(d.event.upper(), d.body, API) for d in deliveries(read_rows())]


def per_event(items):
    for event in items:
        projection.apply_event(event)


def in_batches(items, size):
    for start in range(0, len(items), size):
        with projection.deferred_stats():
            assert batch.apply_batch(items[start : start + size]) is True


def reset():
    Order.objects.all().delete()
    Customer.objects.all().delete()


@pytest.mark.django_db
@pytest.mark.parametrize("styles", [["subscription"], ["legacy"], ["subscription", "legacy"]])
def test_captured_events_in_batches_match_event_by_event(styles):
    items = [e for e in captured_events(styles) if e.kind != EventKind.CUSTOMER_DELETED]
    per_event(items)
    expected = projection_state()
    rng = random.Random(11)
    for size in (1, 3, len(items)):
        for permutation in (items, list(reversed(items)), rng.sample(items, len(items))):
            reset()
            in_batches(permutation, size)
            in_batches(permutation, size)  # replayed: no change
            assert projection_state() == expected


@pytest.mark.django_db
def test_demo_deliveries_in_batches_match_event_by_event():
    items = demo_events()[:900]
    per_event(items)
    expected = projection_state()
    assert Order.objects.count() > 200

    rng = random.Random(5)
    for size in (200, 37):
        reset()
        in_batches(rng.sample(items, len(items)), size)
        assert projection_state() == expected


@pytest.mark.django_db
def test_batch_with_an_erasure_leaves_it_to_the_per_event_path():
    items = captured_events(["subscription"])
    assert any(e.kind == EventKind.CUSTOMER_DELETED for e in items)

    assert batch.apply_batch(items) is False
    assert Order.objects.count() == 0 and Customer.objects.count() == 0


@pytest.mark.django_db
def test_batch_touching_an_erased_customer_is_left_to_the_per_event_path():
    items = [e for e in captured_events(["subscription"]) if e.kind != EventKind.CUSTOMER_DELETED]
    per_event(items)
    ada = Customer.objects.get(saleor_user_id="VXNlcjo0Ng==")
    projection.erase_customer(ada.saleor_user_id, at=timezone.now())
    before = projection_state()

    assert batch.apply_batch(items) is False
    assert projection_state() == before


@pytest.mark.django_db
def test_a_failing_batch_writes_nothing(monkeypatch):
    items = [e for e in captured_events() if e.kind != EventKind.CUSTOMER_DELETED]

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    per_event(items[:2])
    monkeypatch.setattr(projection, "refresh_customer_stats", broken)  # after every write
    before = projection_state()
    assert batch.apply_batch(items) is False
    assert projection_state() == before


@pytest.mark.django_db
def test_a_conflict_with_another_worker_retries_the_batch(monkeypatch):
    from django.db import IntegrityError

    items = [e for e in captured_events() if e.kind != EventKind.CUSTOMER_DELETED]
    per_event(items)
    expected = projection_state()
    reset()
    original = batch._Unit.flush
    calls = []

    def conflicting_once(self):
        calls.append(1)
        if len(calls) == 1:
            original(self)  # rows written, then the unique index of another worker's row bites
            raise IntegrityError("duplicate key value violates unique constraint")
        original(self)

    monkeypatch.setattr(batch._Unit, "flush", conflicting_once)
    assert batch.apply_batch(items) is True
    assert len(calls) == 2
    assert projection_state() == expected


@pytest.mark.django_db(transaction=True)
def test_workers_sharing_new_orders_wait_for_each_other_instead_of_conflicting(monkeypatch):
    import contextlib
    import threading

    from django.db import connection

    items = [e for e in captured_events() if e.kind != EventKind.CUSTOMER_DELETED]
    conflicts = []
    original = batch._Unit.flush
    inside = threading.Barrier(2, timeout=2)

    def slow_flush(self):
        # Both workers have loaded before either writes, unless the other one is waiting on
        # our subjects (then it loads after we commit, which is the point).
        with contextlib.suppress(threading.BrokenBarrierError):
            inside.wait()
        try:
            original(self)
        except Exception as exc:
            conflicts.append(exc)
            raise

    monkeypatch.setattr(batch._Unit, "flush", slow_flush)
    results = []

    def worker(events):
        try:
            with projection.deferred_stats():
                results.append(batch.apply_batch(events))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(part,)) for part in (items, items[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [True, True]
    assert conflicts == []  # without the subject locks both insert the same new orders
    expected_orders = {e.order.saleor_order_id for e in items if e.order is not None}
    assert set(Order.objects.values_list("saleor_order_id", flat=True)) == expected_orders


@pytest.mark.django_db
def test_batches_write_attributes_like_the_per_event_path():
    """New lines go through COPY on PostgreSQL: the JSON list must land as JSON, not as an
    array literal, and equal what the per-event path stores."""
    import copy
    import json

    from saleor_crm_plugin.customers.models import OrderLine
    from tests.captures import load_capture

    capture = load_capture("ORDER_FULLY_PAID", "subscription")
    body = copy.deepcopy(capture.body)
    body["order"]["lines"][0]["variant"]["product"]["attributes"] = [
        {"attribute": {"slug": "size"}, "values": [{"slug": "xl"}, {"slug": "l"}]}
    ]
    raw = json.dumps(body).encode()
    items = [e for e in captured_events(["subscription"]) if e.kind != EventKind.CUSTOMER_DELETED]
    items.append(translate_webhook(capture.event_header, raw, capture.api_url))
    per_event(items)
    expected = projection_state()
    assert sorted(map(tuple, OrderLine.objects.values_list("attributes", flat=True)))[-1] == (
        "size:l",
        "size:xl",
    )
    for permutation in (items, list(reversed(items))):
        reset()
        in_batches(permutation, len(items))
        assert projection_state() == expected
