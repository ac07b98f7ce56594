"""Order bodies translated from orjson's tree without the 19-digit scan, against
``json.loads``' tree.

``from_webhook._order_from_unscanned`` keeps an event made from orjson's tree unless a float
that might be a rounded integer literal (beyond 64 bits, which ``json.loads`` keeps exact)
reached it. Each leaf of every captured order body (and of the bench's UCI-style body) is
replaced by such literals and by floats of the same size, and the translation must give what
the reference translation gives on ``json.loads``' tree: the same event (``repr``: every field
with its type) or the same error."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from saleor_crm_plugin.events import from_webhook
from tests.captures import all_captures
from tests.events import reference_from_webhook as reference
from tests.events.test_translation_differential import _mutated, _outcome, _paths

API_URL = "https://shop.example/graphql/"

# Literals past 64 bits (orjson reads them as floats), at the edges, floats as large, and
# ints orjson keeps exact: each must translate as ``json.loads``' tree does.
HUGE = [
    "100000000000000000001",
    "18446744073709551616",
    "18446744073709551615",
    "-9223372036854775809",
    "-9223372036854775808",
    "9223372036854775808",
    "123456789012345678901234567890",
    "1e20",
    "-1e19",
    "1.8446744073709552e19",
    "9.3e18",
]
SENTINEL = "__crm_huge_literal__"


def _json_loads_translation(kind: str, text: str) -> tuple[str, str]:
    """The reference translation on ``json.loads``' tree, whatever the body holds."""
    original = reference._loads
    reference._loads = json.loads  # type: ignore[assignment]
    try:
        return _outcome(reference.translate_stored_webhook, kind, text, API_URL, "k")
    finally:
        reference._loads = original  # type: ignore[assignment]


def _check(kind: str, text: str) -> None:
    expected = _json_loads_translation(kind, text)
    # Twice: the second reads the amount cache the first may have filled.
    for _ in range(2):
        assert _outcome(from_webhook.translate_stored_webhook, kind, text, API_URL, "k") == expected
        assert (
            _outcome(from_webhook.translate_webhook, kind.upper(), text.encode(), API_URL)[0]
            == expected[0]
        )


def _with_literal(body: Any, path: tuple[Any, ...], literal: str) -> str:
    body = copy.deepcopy(body)
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = SENTINEL
    return json.dumps(body).replace(f'"{SENTINEL}"', literal)


def _order_captures() -> list[Any]:
    return [c for c in all_captures(["subscription"]) if c.event.startswith("ORDER")]


@pytest.mark.parametrize("capture", _order_captures(), ids=lambda c: c.name)
def test_a_huge_literal_at_any_leaf_translates_as_json_loads_reads_it(capture: Any) -> None:
    kind = capture.event.lower()
    leaves = [p for p in _paths(capture.body) if p]
    for index, path in enumerate(leaves):
        # every leaf, with two of the literals each (all of them over the leaves in turn)
        for literal in (HUGE[index % len(HUGE)], HUGE[(index + 5) % len(HUGE)]):
            _check(kind, _with_literal(capture.body, path, literal))


@pytest.mark.parametrize("capture", _order_captures(), ids=lambda c: c.name)
def test_huge_literals_in_mutated_bodies_translate_as_json_loads_reads_them(
    capture: Any,
) -> None:
    import random

    rng = random.Random(f"unscanned-{capture.name}")
    kind = capture.event.lower()
    for round_ in range(60):
        body = _mutated(capture.body, rng, 1 + round_ % 3)
        leaves = [p for p in _paths(body) if p]
        if not leaves:
            continue
        _check(kind, _with_literal(body, rng.choice(leaves), rng.choice(HUGE)))


def test_a_huge_line_amount_is_not_answered_from_the_amount_cache() -> None:
    """A float of 2**63 or more translated first from a float literal (``json.loads``' path
    converts it) must not let a later integer literal rounding to it skip ``_exact``."""
    capture = next(c for c in _order_captures() if c.event == "ORDER_CREATED")
    body = capture.body
    order_path = ("order",) if "order" in body else ("data", "orderCreated", "order")
    path = (*order_path, "lines", 0, "unitPrice", "gross", "amount")
    as_float = _with_literal(body, path, "1e20")
    as_int = _with_literal(body, path, "100000000000000000001")
    _check("order_created", as_float)
    _check("order_created", as_int)
    assert 1e20 not in from_webhook._FLOAT_AMOUNTS


def test_well_formed_orders_take_the_unscanned_tree() -> None:
    """What the fast path is for: the captured orders are translated from it (not twice)."""
    for capture in _order_captures():
        kind = from_webhook.EventKind(capture.event.lower())
        event = from_webhook._order_from_unscanned(kind, capture.raw_body.decode(), API_URL)
        assert event is not None, capture.name
        assert repr(event) == repr(reference._translate(kind, capture.raw_body.decode(), API_URL))


def test_unscanned_tree_flag_is_only_set_inside_the_fast_path() -> None:
    assert from_webhook._ON_UNSCANNED_TREE.get() is False
    from_webhook._exact(1e30)  # a no-op outside the fast path


def test_every_order_and_line_field_is_checked_or_converted() -> None:
    """A field added to the snapshots must be classified here (and, if raw, checked for
    floats in ``_holds_float`` or ``_subscription_line``) for the fast path to stay exact."""
    from dataclasses import fields

    from saleor_crm_plugin.events.types import OrderLineSnapshot, OrderSnapshot

    converted_order = {
        "number",
        "status",
        "origin",
        "created_at",
        "updated_at",
        "user_email",
        "total_gross",
        "total_net",
        "total_tax",
        "subtotal_gross",
        "shipping_gross",
        "lines",
        "payment",
        "paid_at",
        "fulfilled_at",
        "cancelled_at",
    }
    assert {f.name for f in fields(OrderSnapshot)} == converted_order | set(
        from_webhook.RAW_ORDER_FIELDS
    )
    raw_line = {
        "saleor_line_id",
        "product_name",
        "variant_name",
        "variant_id",
        "product_id",
        "product_slug",
        "category_id",
        "category_slug",
        "product_type_id",
        "product_type_slug",
        "sku",
        "quantity_fulfilled",
    }
    converted_line = {
        "quantity",
        "unit_price_gross",
        "unit_price_net",
        "total_price_gross",
        "attributes",
        "quantity_refunded",
    }
    assert {f.name for f in fields(OrderLineSnapshot)} == raw_line | converted_line
