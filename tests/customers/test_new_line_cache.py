"""``projection._new_line`` caching the line's order by a store into the row's relation cache
(feat/w18) instead of ``set_cached_value``: the row it builds, its relation cache and what
``line.order`` and ``batch.point_lines_at_orders`` then read must be what the constructor path
(``_new_line_constructed``, which keeps ``set_cached_value``) gives."""

from __future__ import annotations

import random

from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.batch import point_lines_at_orders
from saleor_crm_plugin.customers.models import Order
from tests.customers.test_plain_line_merge import _snapshot


def _order(rng: random.Random) -> Order:
    order = Order(saleor_order_id=f"O{rng.randrange(10**6)}", channel_id="c", currency="GBP")
    if rng.random() < 0.5:
        order.pk = rng.randrange(1, 10**6)
    return order


def test_new_lines_are_what_the_constructor_path_gives() -> None:
    rng = random.Random("new-line-cache")
    for round_ in range(2000):
        order = _order(rng)
        snap = _snapshot(rng, f"L{round_}")
        fast = projection._new_line(order, snap, False)
        slow = projection._new_line_constructed(order, snap)
        assert type(fast) is type(slow)
        values = {k: v for k, v in fast.__dict__.items() if k != "_state"}
        expected = {k: v for k, v in slow.__dict__.items() if k != "_state"}
        assert values == expected
        assert {k: type(v) for k, v in values.items()} == {k: type(v) for k, v in expected.items()}
        assert fast._state.fields_cache == slow._state.fields_cache == {"order": order}
        assert fast._state.adding and fast._state.db is None
        assert fast.order is order and slow.order is order
        # an order that gets its pk later (a new order of the batch): the lines follow it
        if order.pk is None:
            order.pk = rng.randrange(1, 10**6)
            point_lines_at_orders([fast, slow])
            assert fast.order_id == slow.order_id == order.pk
            assert fast._state.fields_cache == slow._state.fields_cache
