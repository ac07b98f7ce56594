"""The webhook translation against the one before feat/translate, field by field.

``tests/events/reference_from_webhook.py`` is the translation as it was (lines built by the
dataclass constructor). Every captured Saleor payload, and thousands of seeded mutations of
them (amounts as zero, negative zero, tiny, int, text or null; nodes missing, null or of the
wrong type; statuses and quantities changed), must translate to the same event, compared by
``repr`` (which spells every field of every snapshot with its type: ``Decimal('-0.000')``,
``1`` against ``1.0`` against ``True``, time zones), or fail with the same error."""

from __future__ import annotations

import copy
import json
import pickle
import random
from dataclasses import FrozenInstanceError, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from saleor_crm_plugin.events import from_webhook
from saleor_crm_plugin.events.types import (
    CrmEvent,
    CustomerSnapshot,
    OrderLineSnapshot,
    OrderSnapshot,
    PaymentSnapshot,
    new_customer,
    new_event,
    new_line,
    new_order,
    new_payment,
)
from tests.captures import all_captures
from tests.events import reference_from_webhook as reference

API_URL = "https://shop.example/graphql/"
REPLACEMENTS: list[Any] = [
    0.0,
    -0.0,
    1e-05,
    -1e-05,
    0.0005,
    12.345,
    12.3456,
    3,
    0,
    -2,
    True,
    False,
    "2.50",
    "",
    "abc",
    None,
    {},
    [],
    {"amount": 4.2},
    {"amount": -0.0},
    {"gross": {"amount": 7.5}},
    [{"orderLine": {"id": "x"}, "quantity": 1}],
    "REFUNDED",
    "FULFILLED",
    "SUCCESS",
    "CHARGE_SUCCESS",
    "2024-01-02T03:04:05Z",
    "2024-01-02T03:04:05.123456+02:00",
    "not a date",
    1.0,
]


def _outcome(translate: Any, *args: Any) -> tuple[str, str]:
    try:
        event = translate(*args)
    except Exception as exc:  # the error itself is what is compared
        return type(exc).__name__, str(exc)
    return "event", repr(event)


def _both(kind: str, raw_body: bytes) -> None:
    """The stored (worker) and the direct (acknowledgement) entry points, old against new."""
    text = raw_body.decode("utf-8", "surrogatepass")
    assert _outcome(from_webhook.translate_stored_webhook, kind, text, API_URL, "k") == _outcome(
        reference.translate_stored_webhook, kind, text, API_URL, "k"
    )
    header = kind.upper()
    assert _outcome(from_webhook.translate_webhook, header, raw_body, API_URL) == _outcome(
        reference.translate_webhook, header, raw_body, API_URL
    )


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _mutated(body: Any, rng: random.Random, changes: int) -> Any:
    body = copy.deepcopy(body)
    for _ in range(changes):
        paths = [p for p in _paths(body) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if rng.random() < 0.15 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
    return body


@pytest.mark.parametrize("capture", all_captures(), ids=lambda c: c.name)
def test_every_capture_translates_as_before(capture: Any) -> None:
    kind = capture.event.lower()
    _both(kind, capture.raw_body)
    # Twice: the second translation reads the amount caches the first one filled.
    _both(kind, capture.raw_body)


@pytest.mark.parametrize("capture", all_captures(), ids=lambda c: c.name)
def test_mutated_captures_translate_or_fail_as_before(capture: Any) -> None:
    rng = random.Random(capture.name)
    kind = capture.event.lower()
    for round_ in range(150):
        body = _mutated(capture.body, rng, 1 + round_ % 4)
        _both(kind, json.dumps(body).encode())


def test_every_order_event_of_every_capture_translates_as_before() -> None:
    """Each order capture under every order event name (paid, fulfilled, cancelled, ... set
    dates from the event name) and each customer capture under every customer event name."""
    order_kinds = [k for k in from_webhook.EventKind if k.is_order]
    customer_kinds = [k for k in from_webhook.EventKind if k.is_customer]
    for capture in all_captures():
        kinds = order_kinds if capture.event.startswith("ORDER") else customer_kinds
        for kind in kinds:
            _both(kind.value, capture.raw_body)


def test_line_prices_that_round_to_zero_or_repeat_translate_as_before() -> None:
    capture = next(c for c in all_captures(["subscription"]) if c.event == "ORDER_CREATED")
    body = copy.deepcopy(capture.body)
    order = body["order"] if "order" in body else body["data"]["orderCreated"]["order"]
    template = order["lines"][0]
    prices = [0.0, -0.0, 1e-05, -1e-05, 0.0004, 0.0005, -0.0005, 2.5, 2.5, 3, "1.25", None]
    lines = []
    for index, price in enumerate(prices):
        line = copy.deepcopy(template)
        line["id"] = f"line-{index}"
        line["unitPrice"] = {"gross": {"amount": price}, "net": {"amount": price}}
        line["totalPrice"] = {"gross": {"amount": price}} if index % 3 else None
        lines.append(line)
    order["lines"] = lines
    raw = json.dumps(body).encode()
    for _ in range(2):
        _both("order_created", raw)


def test_the_worker_gets_the_stored_key_in_one_event() -> None:
    capture = next(c for c in all_captures(["subscription"]) if c.event == "ORDER_CREATED")
    event = from_webhook.translate_stored_webhook(
        "order_created", capture.raw_body.decode(), API_URL, "stored-key"
    )
    assert event.dedupe_key == "stored-key"
    assert type(event) is CrmEvent
    assert type(event.order) is OrderSnapshot
    assert all(type(line) is OrderLineSnapshot for line in event.order.lines or ())


NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _hash(value: object) -> object:
    try:
        return hash(value)
    except TypeError as exc:  # a snapshot holding a dict (metadata) is unhashable either way
        return str(exc)


@pytest.mark.parametrize(
    ("cls", "build", "args", "kwargs"),
    [
        (
            OrderLineSnapshot,
            new_line,
            ("l", "p", "v", 2, Decimal("1.000"), Decimal("0.900"), Decimal("2.000")),
            {"attributes": ("a:b",), "quantity_refunded": 1},
        ),
        (PaymentSnapshot, new_payment, (Decimal("1.000"), Decimal("0.000")), {"inferred": True}),
        (OrderSnapshot, new_order, ("o", "1", "c", "GBP", "UNFULFILLED", NOW), {"user_id": "u"}),
        (CustomerSnapshot, new_customer, ("u",), {"email": "a@b.c", "metadata": {"k": "v"}}),
        (CrmEvent, new_event, ("order_created", "subscription", "o", NOW), {"dedupe_key": "k"}),
    ],
)
def test_builders_make_what_the_dataclass_makes(
    cls: type, build: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    for given_args, given_kwargs in ((args, {}), (args, kwargs)):
        built = build(*given_args, **given_kwargs)
        expected = cls(*given_args, **given_kwargs)
        assert type(built) is cls
        assert built == expected
        assert repr(built) == repr(expected)
        assert _hash(built) == _hash(expected)
        assert pickle.loads(pickle.dumps(built)) == expected
        assert copy.copy(built) == expected
        with pytest.raises(FrozenInstanceError):
            setattr(built, fields(cls)[0].name, "changed")
    with pytest.raises(TypeError):
        build(*args[:-1])  # a required field missing, as the class would refuse it
    with pytest.raises(TypeError):
        build(*args, unknown=1)
