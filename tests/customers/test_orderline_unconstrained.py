"""Migration 0018: order lines point at their order without a database constraint.

PostgreSQL checked that foreign key with one query per new line at commit (13% of its CPU in
a worker's drain). These tests hold what the constraint guarded: no path of the app leaves a
line without its order, and deleting orders through Django still deletes their lines.
"""

from __future__ import annotations

import random

import pytest
from django.db import connection

from saleor_crm_plugin.customers import batch, projection
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine
from saleor_crm_plugin.events.types import EventKind
from tests.customers.test_batch import captured_events, demo_events

pytestmark = pytest.mark.django_db


def _orphan_lines() -> int:
    return OrderLine.objects.exclude(order_id__in=Order.objects.values("pk")).count()


def _foreign_keys(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = to_regclass(%s)",
            [connection.ops.quote_name(table)],
        )
        return {row[0] for row in cursor.fetchall()}


def test_only_the_line_order_constraint_is_gone():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's constraints")
    assert _foreign_keys(OrderLine._meta.db_table) == set()
    # The others stay (the order's customer, say).
    assert any("(customer_id)" in d for d in _foreign_keys(Order._meta.db_table))
    assert OrderLine._meta.get_field("order").db_constraint is False


@pytest.mark.parametrize("size", [1, 7, 200])
def test_no_path_of_the_projection_leaves_a_line_without_its_order(size):
    """Batches of several sizes, in three orders, replayed, then the per-event path (which
    also deletes stale lines): every line's order exists throughout."""
    items = demo_events()[:400] + [
        e for e in captured_events() if e.kind != EventKind.CUSTOMER_DELETED
    ]
    rng = random.Random(size)
    for permutation in (items, list(reversed(items)), rng.sample(items, len(items))):
        for start in range(0, len(permutation), size):
            with projection.deferred_stats():
                assert batch.apply_batch(permutation[start : start + size]) is True
        assert OrderLine.objects.exists()
        assert _orphan_lines() == 0
    for event in rng.sample(items, len(items)):
        projection.apply_event(event)
    assert _orphan_lines() == 0


def test_deleting_orders_through_django_deletes_their_lines():
    items = demo_events()[:300]
    with projection.deferred_stats():
        assert batch.apply_batch(items) is True
    orders = list(Order.objects.filter(lines__isnull=False).distinct().order_by("pk")[:3])
    assert len(orders) == 3
    doomed = [order.pk for order in orders]
    kept = OrderLine.objects.exclude(order_id__in=doomed).count()
    assert OrderLine.objects.filter(order_id__in=doomed).exists()

    orders[0].delete()  # one instance
    Order.objects.filter(pk__in=doomed[1:]).delete()  # a queryset

    assert not OrderLine.objects.filter(order_id__in=doomed).exists()
    assert OrderLine.objects.count() == kept
    assert _orphan_lines() == 0
    # Customers keep their remaining orders; deleting a customer leaves orders (SET_NULL).
    Customer.objects.filter(orders__isnull=False).first().delete()
    assert _orphan_lines() == 0
