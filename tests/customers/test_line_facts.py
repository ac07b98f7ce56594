"""``projection._fill_line_facts`` fills in exactly what the per-fact loop filled in (a fact
the snapshot knows and the line lacks), whichever facts either side has, and says whether it
did."""

from __future__ import annotations

import random
from decimal import Decimal

from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.models import OrderLine
from saleor_crm_plugin.events.types import OrderLineSnapshot

EMPTY: dict[str, object] = dict.fromkeys(projection._LINE_FACTS, "")


def _reference(row: OrderLine, snap: OrderLineSnapshot) -> bool:
    changed = False
    for name in projection._LINE_FACTS:
        value, current = getattr(snap, name), getattr(row, name)
        if value and not current:
            setattr(row, name, list(value) if isinstance(value, tuple) else value)
            changed = True
    return changed


def _snapshot(facts: dict[str, object]) -> OrderLineSnapshot:
    return OrderLineSnapshot("L-1", "Mug", "Blue", 1, *[Decimal(1)] * 3, **facts)  # type: ignore[arg-type]


def _row(facts: dict[str, object]) -> OrderLine:
    row = OrderLine(saleor_line_id="L-1")
    for name, value in facts.items():
        setattr(row, name, value)
    return row


def _facts(rng: random.Random, side: str) -> dict[str, object]:
    facts: dict[str, object] = {}
    for name in projection._LINE_FACTS:
        if name == "attributes":
            choice = rng.choice([None, (), ("size:m",)] if side == "snap" else [[], ["size:s"]])
        else:
            choice = rng.choice([None, "", f"{name}-{side}"] if side == "snap" else ["", "x"])
        if choice is not None or side == "snap":
            facts[name] = choice
    return facts


def test_fills_what_the_per_fact_loop_filled() -> None:
    rng = random.Random(8)
    cases = [({}, {}), (EMPTY, {}), ({}, {"sku": "S"}), ({"sku": "S"}, {})]
    cases += [(_facts(rng, "row"), _facts(rng, "snap")) for _ in range(3000)]
    for row_facts, snap_facts in cases:
        snap = _snapshot(snap_facts)
        fast, slow = _row(row_facts), _row(row_facts)
        assert projection._fill_line_facts(fast, snap) == _reference(slow, snap)
        for name in projection._LINE_FACTS:
            assert getattr(fast, name) == getattr(slow, name), name
            assert type(getattr(fast, name)) is type(getattr(slow, name)), name


def test_each_single_missing_fact_is_filled() -> None:
    for name in projection._LINE_FACTS:
        value: object = ("a:b",) if name == "attributes" else "v"
        row = _row({n: (["x:y"] if n == "attributes" else "x") for n in projection._LINE_FACTS})
        row.__dict__[name] = [] if name == "attributes" else ""
        assert projection._fill_line_facts(row, _snapshot({name: value})) is True
        assert getattr(row, name) == (["a:b"] if name == "attributes" else "v")
