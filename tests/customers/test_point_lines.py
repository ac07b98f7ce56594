"""``batch.point_lines_at_orders`` against ``line.order_id = line.order.pk`` (the two
descriptors it replaces in the batch flush): same ids, same cached orders afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.batch import point_lines_at_orders
from saleor_crm_plugin.customers.models import Order, OrderLine
from saleor_crm_plugin.events.types import OrderLineSnapshot


def _order(pk: int | None) -> Order:
    order = Order(
        saleor_order_id=f"O-{pk}",
        channel_id="C",
        currency="USD",
        status="UNFULFILLED",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    order.pk = pk
    return order


def _state(line: OrderLine) -> tuple[object, bool, object]:
    field = OrderLine._meta.get_field("order")
    cached = field.is_cached(line)
    # the cached order by its Saleor id (unsaved orders compare by identity)
    return (
        line.__dict__["order_id"],
        cached,
        field.get_cached_value(line).saleor_order_id if cached else None,
    )


def _built(cases: list[tuple[int | None, int | None]]) -> list[OrderLine]:
    lines = []
    for n, (pk_when_built, pk_at_flush) in enumerate(cases):
        order = _order(pk_when_built)
        snap = OrderLineSnapshot(f"L-{n}", "p", "v", 1, *[Decimal(1)] * 3)
        line = projection._new_line(order, snap)
        order.pk = pk_at_flush  # a new order of the batch gets its id when inserted
        lines.append(line)
    return lines


def test_ids_and_cached_orders_are_what_the_descriptors_leave() -> None:
    cases = [(None, 7), (None, 8), (5, 5), (5, 6), (None, None), (3, 3)]
    ours, theirs = _built(cases), _built(cases)
    point_lines_at_orders(ours)
    for line in theirs:
        line.order_id = projection.order_pk(line.order)
    assert [_state(line) for line in ours] == [_state(line) for line in theirs]
    # a new order's lines lose the cached order (their id changed), a known order's keep it
    assert [cached for _, cached, _ in map(_state, ours)] == [
        False,
        False,
        True,
        False,
        True,
        True,
    ]


def test_a_line_whose_order_is_cached_as_none_raises_as_the_descriptor_does() -> None:
    line = _built([(None, 1)])[0]
    OrderLine._meta.get_field("order").set_cached_value(line, None)
    with pytest.raises(OrderLine.order.RelatedObjectDoesNotExist):
        point_lines_at_orders([line])
