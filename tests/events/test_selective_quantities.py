"""Fulfilment and granted-refund lines decoded as msgspec structs (``order_schema.QuantityLine``,
feat/w14) against the translation on ``json.loads``' tree.

``from_webhook._add_quantities`` reads a struct line as the dict path reads a dict: the refunded
quantities (and so every line snapshot's ``quantity_refunded``) and the errors must be those of
``json.loads``' tree for every shape a line can take, the selective path may only give up.
Uses ``test_selective_orders._check``: the selective event, when there is one, equals the
reference translation on ``json.loads``' tree, and so does the worker's entry point."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from saleor_crm_plugin.events import from_webhook, order_schema
from saleor_crm_plugin.events.types import EventKind
from tests.events.test_selective_orders import _check, _uci_bodies

_ABSENT = object()
ORDER_LINE_NODES: list[Any] = [
    _ABSENT,
    None,
    {},
    {"id": None},
    {"id": ""},
    {"id": 0},
    {"id": 7},
    {"id": "x"},
    {"id": ["unhashable"]},
    {"id": {"a": 1}},
    "abc",
    [],
    ["x"],
    0,
    True,
]
QUANTITIES: list[Any] = [
    _ABSENT,
    None,
    0,
    1,
    2,
    -1,
    2.0,
    2.5,
    1e20,
    "3",
    True,
    [],
    {},
    2**70,
    -(2**70),
    2**63,
]
STATUSES: list[Any] = ["REFUNDED", "refunded_and_returned", "FULFILLED", None, 5, "SUCCESS"]


def _line(rng: random.Random, line_ids: list[str]) -> Any:
    if rng.random() < 0.05:
        return rng.choice([None, "line", 3, [], ["x"]])
    line: dict[str, Any] = {"id": "RnVsZmlsbG1lbnRMaW5lOjE=", "extra": {"skipped": [1, 2]}}
    node = rng.choice(ORDER_LINE_NODES + [{"id": i} for i in line_ids] * 3)
    if node is not _ABSENT:
        line["orderLine"] = node
    quantity = rng.choice(QUANTITIES + [1, 2, 3] * 3)
    if quantity is not _ABSENT:
        line["quantity"] = quantity
    return line


def _lines(rng: random.Random, line_ids: list[str]) -> Any:
    if rng.random() < 0.08:
        return rng.choice([_ABSENT, None, [], "lines", {"a": 1}])
    return [_line(rng, line_ids) for _ in range(rng.randrange(0, 4))]


def _with_refunds(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    body = copy.deepcopy(body)
    order = body["order"]
    line_ids = [line["id"] for line in order.get("lines") or []][:3]
    fulfillments = []
    for _ in range(rng.randrange(0, 3)):
        fulfillment: dict[str, Any] = {
            "id": "RnVsZmlsbG1lbnQ6MQ==",
            "status": rng.choice(STATUSES),
            "created": "2025-11-24T09:09:00+00:00",
        }
        lines = _lines(rng, line_ids)
        if lines is not _ABSENT:
            fulfillment["lines"] = lines
        fulfillments.append(fulfillment)
    order["fulfillments"] = fulfillments
    grants = []
    for _ in range(rng.randrange(0, 3)):
        grant: dict[str, Any] = {"status": rng.choice(STATUSES)}
        lines = _lines(rng, line_ids)
        if lines is not _ABSENT:
            grant["lines"] = lines
        grants.append(grant)
    if grants or rng.random() < 0.5:
        order["grantedRefunds"] = grants
    return body


def test_refund_lines_as_structs_translate_as_json_loads_reads_them() -> None:
    rng = random.Random("selective-quantities")
    taken = refunded = 0
    bodies = [json.loads(text) for _, text in _uci_bodies()[:30]]
    for round_ in range(1500):
        body = _with_refunds(bodies[round_ % len(bodies)], rng)
        kind = rng.choice([EventKind.ORDER_REFUNDED, EventKind.ORDER_FULFILLED])
        text = json.dumps(body)
        if _check(kind, text):
            taken += 1
            event = from_webhook._order_from_selected(kind, text, "https://shop.example/graphql/")
            assert event is not None and event.order is not None
            refunded += any(line.quantity_refunded for line in event.order.lines or ())
    assert taken > 700  # most bodies keep the shapes the schema takes
    assert refunded > 40  # and refunded quantities are counted from the structs


def test_quantity_lines_are_decoded_as_structs() -> None:
    _, text = _uci_bodies()[0]
    body = json.loads(text)
    order = body["order"]
    order["fulfillments"] = [
        {"status": "REFUNDED", "lines": [{"quantity": 1, "orderLine": {"id": "L"}}]}
    ]
    decoded = from_webhook._SELECTIVE_DECODE(json.dumps(body))  # type: ignore[misc]
    line = decoded["order"]["fulfillments"][0]["lines"][0]
    assert type(line) is order_schema.QuantityLine
    assert line.orderLine.id == "L"
    assert from_webhook._add_quantities({}, [line]) is None
    totals: dict[str, int] = {}
    from_webhook._add_quantities(totals, [line, {"quantity": 2, "orderLine": {"id": "L"}}])
    assert totals == {"L": 3}
