"""The batch's in-memory merge read and written through rows' ``__dict__`` (feat/w14) against
the attribute path it replaces, on generated rows and snapshots.

``projection.merge_lines`` merges a known line by ``_merge_plain_line`` (the row's
``__dict__``) when ``OrderLine``'s columns are plain ``DeferredAttribute``s; forcing
``_PLAIN_LINES`` to ``_NOT_PLAIN`` takes the attribute path of before. Both must leave every
row, the order and the returned changes identical. ``merge_embedded_profile`` must do what
``merge_profile(customer, embedded_profile(snapshot), version)`` did, ``field_versions``' key
order included (it is stored as JSON)."""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from typing import Any

import pytest

from saleor_crm_plugin.core.rows import new_instance
from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine
from saleor_crm_plugin.events.types import OrderLineSnapshot, OrderSnapshot

VERSIONS = ["", "2024-01-01|3|a", "2024-01-02|3|b", "2024-01-03|1|c"]
QUANTITIES: list[Any] = [None, 0, 1, 3, 7, "", "2", [], {}, 0.0, False]


def _fact(rng: random.Random, name: str, side: str) -> Any:
    if name == "attributes":
        if side == "snap":
            return rng.choice([None, (), ("size:m",), ("a:b", "c:d")])
        return rng.choice([[], ["size:s"]])
    if side == "snap":
        return rng.choice([None, "", f"{name}-new"])
    return rng.choice(["", f"{name}-old"])


def _snapshot(rng: random.Random, line_id: str) -> OrderLineSnapshot:
    facts = {name: _fact(rng, name, "snap") for name in projection._LINE_FACTS}
    return OrderLineSnapshot(
        saleor_line_id=line_id,
        product_name=rng.choice(["", "Mug", "Cup"]),
        variant_name=rng.choice(["", "Blue"]),
        quantity=rng.choice([1, 2, 5]),
        unit_price_gross=rng.choice([Decimal("1.000"), Decimal("2.50"), Decimal(0)]),
        unit_price_net=rng.choice([Decimal("1.000"), Decimal("2.00")]),
        total_price_gross=rng.choice([Decimal("1.000"), Decimal("5.00")]),
        quantity_fulfilled=rng.choice(QUANTITIES),
        quantity_refunded=rng.choice(QUANTITIES),
        **facts,
    )


def _loaded_line(rng: random.Random, order: Order, line_id: str) -> OrderLine:
    """A line as the batch loads it: every column in its ``__dict__``, not adding."""
    row = new_instance(
        OrderLine,
        id=rng.randrange(1, 10**6),
        order_id=order.pk,
        saleor_line_id=line_id,
        product_name=rng.choice(["", "Mug"]),
        variant_name=rng.choice(["", "Blue"]),
        quantity=rng.choice([1, 2]),
        quantity_fulfilled=rng.choice([0, 1, 2]),
        quantity_refunded=rng.choice([0, 1]),
        unit_price_gross=rng.choice([Decimal("1.000"), Decimal("2.500")]),
        unit_price_net=Decimal("1.000"),
        total_price_gross=rng.choice([Decimal("1.000"), Decimal("5.000")]),
        **{name: _fact(rng, name, "row") for name in projection._LINE_FACTS},
    )
    row._state.adding = False
    return row


def _case(seed: int) -> tuple[Order, dict[str, OrderLine], tuple[OrderLineSnapshot, ...], str]:
    rng = random.Random(seed)
    order = new_instance(
        Order,
        id=seed + 1,
        saleor_order_id=f"O-{seed}",
        channel_id="C",
        currency="EUR",
        status="UNFULFILLED",
        created_at=None,
        lines_version=rng.choice(VERSIONS),
        fulfilled_version=rng.choice(VERSIONS),
        refunded_version=rng.choice(VERSIONS),
    )
    ids = [f"L-{n}" for n in range(rng.randrange(0, 7))]
    existing = {i: _loaded_line(rng, order, i) for i in ids if rng.random() < 0.7}
    snaps = tuple(_snapshot(rng, i) for i in ids if rng.random() < 0.85)
    if rng.random() < 0.1:  # a snapshot line the order has not seen
        snaps += (_snapshot(rng, "L-new"),)
    return order, existing, snaps, rng.choice(VERSIONS[1:])


def _state(order: Order, existing: dict[str, OrderLine], changes: Any) -> Any:
    def row(line: OrderLine) -> Any:
        values = {k: v for k, v in line.__dict__.items() if k != "_state"}
        return sorted((k, type(v).__name__, repr(v)) for k, v in values.items())

    return (
        sorted((k, row(v)) for k, v in existing.items()),
        [row(r) for r in changes.create],
        [r.saleor_line_id for r in changes.update],
        [r.saleor_line_id for r in changes.stale],
        changes.order_fields,
        (order.lines_version, order.fulfilled_version, order.refunded_version),
    )


def _merged(case: Any, monkeypatch: pytest.MonkeyPatch | None) -> Any:
    order, existing, snaps, version = copy.deepcopy(case)
    if monkeypatch is not None:
        monkeypatch.setattr(projection, "_PLAIN_LINES", projection._NOT_PLAIN)
    try:
        changes = projection.merge_lines(order, existing, snaps, version)
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    return _state(order, existing, changes)


def test_line_columns_are_plain_so_the_fast_path_runs() -> None:
    assert projection._plain_lines() is projection._PLAIN


def test_dict_merge_gives_what_the_attribute_merge_gave(monkeypatch: pytest.MonkeyPatch) -> None:
    updated = 0
    for seed in range(2500):
        case = _case(seed)
        fast = _merged(case, None)
        slow = _merged(case, monkeypatch)
        assert fast == slow, seed
        updated += len(fast[2])
    assert updated > 1000  # the cases do change known lines


def test_a_deferred_column_takes_the_attribute_path(monkeypatch: pytest.MonkeyPatch) -> None:
    order, existing, snaps, version = next(
        case
        for case in map(_case, range(100))
        if set(case[1]) & {s.saleor_line_id for s in case[2]}
    )
    row = existing[next(s.saleor_line_id for s in snaps if s.saleor_line_id in existing)]
    del row.__dict__["sku"]  # deferred: reading it would query; the attribute path decides

    def refresh(fields: Any = None, **kwargs: Any) -> None:
        row.__dict__["sku"] = "loaded"

    monkeypatch.setattr(row, "refresh_from_db", refresh)
    projection.merge_lines(order, existing, snaps, version)
    assert row.__dict__["sku"] in {"loaded", *(s.sku for s in snaps if s.sku)}


def test_knowing_a_quantity_register_is_every_line_not_none() -> None:
    rng = random.Random(3)
    for _ in range(500):
        snaps = [_snapshot(rng, f"L-{n}") for n in range(rng.randrange(0, 5))]
        expected = all(s.quantity_fulfilled is not None for s in snaps)
        assert (None not in map(projection._QUANTITY_FULFILLED, snaps)) is expected
        expected = all(s.quantity_refunded is not None for s in snaps)
        assert (None not in map(projection._QUANTITY_REFUNDED, snaps)) is expected


# -- the profile an order embeds -------------------------------------------------------------


def _customer(rng: random.Random) -> Customer:
    versions = {}
    for name in rng.sample(list(projection._PROFILE_FIELDS), rng.randrange(0, 5)):
        versions[name] = rng.choice(["0|2024-01-02|3|k", "1|2024-01-01|3|k", "0|2024-01-01|3|k"])
    return new_instance(
        Customer,
        id=1,
        saleor_user_id="U-1",
        email=rng.choice(["", "a@example.com"]),
        first_name=rng.choice(["", "Ann"]),
        last_name=rng.choice(["", "Lee"]),
        field_versions=versions,
        erased_at=rng.choice([None, None, None, "2024-01-01"]),
    )


def _order_snapshot(rng: random.Random) -> OrderSnapshot:
    return OrderSnapshot(
        saleor_order_id="O-1",
        number="1",
        channel_id="C",
        currency="EUR",
        status="UNFULFILLED",
        created_at=None,  # type: ignore[arg-type]
        user_id="U-1",
        user_email=rng.choice(["", "b@example.com"]),
        user_first_name=rng.choice([None, "", "Bob"]),
        user_last_name=rng.choice([None, "", "Ray"]),
    )


def test_embedded_profile_merge_gives_what_merge_profile_gave() -> None:
    rng = random.Random(5)
    changed = 0
    for _ in range(3000):
        customer = _customer(rng)
        snapshot = _order_snapshot(rng)
        version = rng.choice(["0|2024-01-01|3|k", "0|2024-01-03|3|k", "0|2023-12-31|3|z"])
        fast, slow = copy.deepcopy(customer), copy.deepcopy(customer)
        got = projection.merge_embedded_profile(fast, snapshot, version)
        expected = projection.merge_profile(slow, projection.embedded_profile(snapshot), version)
        assert got == expected
        fast_values = {k: v for k, v in fast.__dict__.items() if k != "_state"}
        slow_values = {k: v for k, v in slow.__dict__.items() if k != "_state"}
        assert fast_values == slow_values
        assert list(fast.field_versions.items()) == list(slow.field_versions.items())
        changed += got
    assert changed > 500
