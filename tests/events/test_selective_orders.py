"""Order bodies translated from msgspec's selective tree (``events.order_schema``) against the
translation on ``json.loads``' tree.

``from_webhook._order_from_selected`` decodes only the keys the schema declares. Its event
must be the one ``json.loads``' tree gives (``repr``: every field with its type) whenever it
gives one, on every captured order body, the demo's UCI deliveries, seeded mutations of them
(values of other types, nodes missing or null, literals past 64 bits) and corrupted texts; it
may only give up (None), never differ. A recording tree shows every key the translation reads
is declared, so a key read but left out of the schema fails here even where no capture holds
a value for it."""

from __future__ import annotations

import copy
import json
import random
import typing
from functools import cache
from typing import Any

import msgspec
import pytest

from saleor_crm_plugin.demo.events import deliveries, read_rows
from saleor_crm_plugin.events import from_webhook, order_schema
from saleor_crm_plugin.events.types import EventKind
from tests.captures import all_captures
from tests.events import reference_from_webhook as reference
from tests.events.test_translation_differential import REPLACEMENTS, _mutated, _outcome, _paths
from tests.events.test_unscanned_orders import HUGE, _with_literal

API_URL = "https://shop.example/graphql/"
ORDER_KINDS = [k for k in EventKind if k.is_order]


def _json_loads_translation(kind: EventKind, text: str) -> tuple[str, str]:
    """The reference translation on ``json.loads``' tree, whatever the body holds."""
    original = reference._loads
    reference._loads = json.loads  # type: ignore[assignment]
    try:
        return _outcome(reference.translate_stored_webhook, kind.value, text, API_URL, "k")
    finally:
        reference._loads = original  # type: ignore[assignment]


def _selected(kind: EventKind, text: str) -> tuple[str, str] | None:
    event = from_webhook._order_from_selected(kind, text, API_URL)
    return None if event is None else ("event", repr(event.with_dedupe_key("k")))


def _check(kind: EventKind, text: str) -> bool:
    """The selective path's event, if any, is ``json.loads``'; so is the worker's entry point.
    True when the selective path gave the event."""
    expected = _json_loads_translation(kind, text)
    got = _selected(kind, text)
    if got is not None:
        assert got == expected
    assert (
        _outcome(from_webhook.translate_stored_webhook, kind.value, text, API_URL, "k") == expected
    )
    return got is not None


def _order_captures() -> list[Any]:
    return [c for c in all_captures(["subscription"]) if c.event.startswith("ORDER")]


@cache
def _uci_bodies() -> list[tuple[EventKind, str]]:
    found = []
    for delivery in deliveries(read_rows()):
        kind = EventKind(delivery.event)
        if kind.is_order:
            found.append((kind, delivery.body.decode()))
        if len(found) >= 150:
            break
    return found


@pytest.mark.parametrize("capture", _order_captures(), ids=lambda c: c.name)
def test_captured_orders_take_the_selective_tree_under_every_order_event(capture: Any) -> None:
    text = capture.raw_body.decode()
    for kind in ORDER_KINDS:
        assert _check(kind, text), (capture.name, kind)


def test_uci_orders_take_the_selective_tree() -> None:
    for kind, text in _uci_bodies():
        assert _check(kind, text)


@pytest.mark.parametrize("capture", _order_captures(), ids=lambda c: c.name)
def test_mutated_orders_translate_as_json_loads_reads_them(capture: Any) -> None:
    rng = random.Random(f"selective-{capture.name}")
    kind = EventKind(capture.event.lower())
    taken = 0
    for round_ in range(300):
        body = _mutated(capture.body, rng, 1 + round_ % 4)
        text = json.dumps(body)
        if round_ % 5 == 0:
            leaves = [p for p in _paths(body) if p]
            if leaves:
                text = _with_literal(body, rng.choice(leaves), rng.choice(HUGE))
        taken += _check(kind, text)
    assert taken > 100  # most mutations keep the shapes the schema takes


def test_mutated_uci_orders_translate_as_json_loads_reads_them() -> None:
    rng = random.Random("selective-uci")
    for kind, text in _uci_bodies()[:40]:
        body = json.loads(text)
        for round_ in range(10):
            _check(kind, json.dumps(_mutated(body, rng, 1 + round_ % 3)))


# Texts the selective decoder must refuse wherever ``json.loads`` does (in values it skips as
# well as in those it keeps), or read as ``json.loads`` does.
_EDITS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "01",
    "1.",
    ".5",
    "+1",
    "-",
    "tru",
    "nul",
    '"\\x"',
    '"\\ud800"',
    '"\\udc00x"',
    '"\\ud83d\\ude00"',
    '"\x01"',
    '"\t"',
    '"\\u0000"',
    "[1,]",
    '{"a":1,}',
    "[",
    "}",
    ",",
    ":",
    '"',
    "\\",
    " ",
    "\ufeff",
    "123456789012345678901234567890",
    "1E5",
    "-0",
    "-0.0",
    "1e-400",
    "\u00e9",
    '"\u2028"',
]


def _corrupted(text: str, rng: random.Random) -> str:
    position = rng.randrange(len(text) + 1)
    edit = rng.choice(_EDITS)
    action = rng.random()
    if action < 0.4:  # a value's text replaced (or any span)
        return text[:position] + edit + text[position + rng.randrange(1, 12) :]
    if action < 0.8:
        return text[:position] + edit + text[position:]
    return text[:position] + text[position + rng.randrange(1, 4) :]


@pytest.mark.parametrize("capture", _order_captures(), ids=lambda c: c.name)
def test_corrupted_texts_are_refused_or_read_as_json_loads_reads_them(capture: Any) -> None:
    rng = random.Random(f"corrupted-{capture.name}")
    kind = EventKind(capture.event.lower())
    text = capture.raw_body.decode()
    for _ in range(400):
        _check(kind, _corrupted(text, rng))
    # The same edits placed at value positions of keys the schema declares and skips.
    body = capture.body
    for path in [p for p in _paths(body) if p][:: max(1, len(_paths(body)) // 60)]:
        for edit in _EDITS:
            marked = copy.deepcopy(body)
            parent = marked
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = "__edit__"
            _check(kind, json.dumps(marked).replace('"__edit__"', edit))


def test_duplicate_keys_keep_the_last_value_as_json_loads_does() -> None:
    capture = next(c for c in _order_captures() if c.event == "ORDER_CREATED")
    text = capture.raw_body.decode()
    kind = EventKind.ORDER_CREATED
    for key, value in [
        ("id", '"other"'),
        ("lines", "[]"),
        ("lines", "null"),
        ("user", "null"),
        ("status", '"CANCELED"'),
        ("number", "123456789012345678901234567890"),
        ("unitPrice", '{"gross": {"amount": 1.5}}'),
        ("variant", "null"),
        ("currency", '"EUR"'),
    ]:
        # a second occurrence of the key after its first, and one before it
        after = text.replace(f'"{key}": ', f'"{key}": {value}, "{key}": ', 1)
        before = text.replace(f'"{key}":', f'"{key}": {value}, "{key}":', 1)
        for variant in (after, before):
            _check(kind, variant)


# -- every key the translation reads is declared ---------------------------------------------


class _Reads(dict):  # type: ignore[type-arg]
    """A node of ``json.loads``' tree that records each key read of it, under its schema type."""

    def __init__(self, value: dict[str, Any], schema: Any, reads: set[tuple[str, str]]) -> None:
        super().__init__(value)
        self.schema = schema
        self.reads = reads

    def _note(self, key: str) -> None:
        self.reads.add((getattr(self.schema, "__name__", repr(self.schema)), key))

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._note(str(key))
        return super().__contains__(key)


def _is_struct(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, msgspec.Struct)


def _node_type(annotation: Any) -> tuple[str, Any]:
    """("node", TypedDict) / ("list", TypedDict) / ("any", None) for a schema annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    inner = args[0]
    if typing.get_origin(inner) is list:
        return "list", typing.get_args(inner)[0]
    if typing.is_typeddict(inner) or _is_struct(inner):
        return "node", inner
    return "any", None


def _recording(value: Any, schema: Any, reads: set[tuple[str, str]]) -> Any:
    """``value`` with each dict under a schema type made a ``_Reads``; an undeclared key's
    value stays a plain tree (reading into it is already a failure: its key was noted)."""
    if not isinstance(value, dict) or schema is None:
        return value
    hints = typing.get_type_hints(schema)
    wrapped = {}
    for key, item in value.items():
        shape, inner = _node_type(hints[key]) if key in hints else ("any", None)
        if shape == "node":
            wrapped[key] = _recording(item, inner, reads)
        elif shape == "list" and isinstance(item, list):
            wrapped[key] = [_recording(element, inner, reads) for element in item]
        else:
            wrapped[key] = item
    return _Reads(wrapped, schema, reads)


def _declared(schema: Any, key: str) -> bool:
    return key in typing.get_type_hints(schema)


def test_every_key_the_translation_reads_is_declared() -> None:
    reads: set[tuple[str, str]] = set()
    bodies = [json.loads(c.raw_body) for c in _order_captures()]
    bodies += [json.loads(text) for _, text in _uci_bodies()[:20]]
    # Shapes the captures lack: product types and attributes, refunds, a channel without a
    # currency code (the total's currency is read then).
    extra = copy.deepcopy(bodies[0])
    order = extra["order"] if "order" in extra else extra["data"]["orderCreated"]["order"]
    order["channel"].pop("currencyCode", None)
    for line in order.get("lines") or []:
        product = line.setdefault("variant", {}).setdefault("product", {})
        product["productType"] = {"id": "UHJvZHVjdFR5cGU6MQ==", "slug": "t-shirt"}
        product["attributes"] = [{"attribute": {"slug": "size"}, "values": [{"slug": "m"}]}]
    order["fulfillments"] = [
        {
            "status": "REFUNDED",
            "created": "2024-01-02T03:04:05Z",
            "lines": [
                {"quantity": 1, "orderLine": {"id": (order.get("lines") or [{}])[0].get("id")}}
            ],
        }
    ]
    order["grantedRefunds"] = [
        {"status": "SUCCESS", "lines": [{"quantity": 1, "orderLine": {"id": "x"}}]}
    ]
    order["transactions"] = [{"events": [{"type": "CHARGE_SUCCESS", "createdAt": "2024-01-02"}]}]
    bodies.append(extra)
    for kind in ORDER_KINDS:
        assert _check(kind, json.dumps(extra))
    for body in bodies:
        for kind in ORDER_KINDS:
            tree = _recording(body, order_schema.OrderBody, reads)
            from_webhook._from_subscription(kind, tree, API_URL)
    schemas = {
        name: obj
        for name, obj in vars(order_schema).items()
        if isinstance(obj, type) and (typing.is_typeddict(obj) or _is_struct(obj))
    }
    undeclared = sorted((name, key) for name, key in reads if not _declared(schemas[name], key))
    assert undeclared == []
    # and the recording saw the reads that matter (it is not vacuous)
    assert ("Line", "productName") in reads
    assert ("LineProduct", "attributes") in reads
    assert ("LineProduct", "productType") in reads
    assert ("MoneyWithCurrency", "currency") in reads


def test_a_key_left_out_of_the_schema_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The differential checks above fail for a declared key removed: here the order's
    ``voucherCode`` (a dict key) and a line's ``productName`` (a struct field, which the
    line translation reads by attribute: it then fails and takes the usual path, which the
    checks also catch, since the captures must take the selective tree)."""
    from tests.captures import all_captures as captures

    hints = dict(typing.get_type_hints(order_schema.Order))
    del hints["voucherCode"]
    order = typing.TypedDict("Order", hints, total=False)  # type: ignore[misc]
    body_hints = dict(typing.get_type_hints(order_schema.OrderBody))
    body_hints["order"] = order | None
    body = typing.TypedDict("OrderBody", body_hints, total=False)  # type: ignore[misc]
    monkeypatch.setattr(from_webhook, "_SELECTIVE_DECODE", msgspec.json.Decoder(body).decode)
    with_voucher = [c for c in captures(["subscription"]) if b'"voucherCode": "' in c.raw_body]
    kind = EventKind.ORDER_CREATED
    if with_voucher:
        text = with_voucher[0].raw_body.decode()
    else:
        text = _uci_bodies()[0][1].replace('"voucherCode": null', '"voucherCode": "SPRING"')
    with pytest.raises(AssertionError):
        _check(kind, text)
    monkeypatch.undo()

    fields = [
        (name, field_type, default)
        for name, field_type, default in (
            (f.name, f.type, f.default) for f in msgspec.structs.fields(order_schema.Line)
        )
        if name != "productName"
    ]
    line = msgspec.defstruct("Line", fields, gc=False)
    hints = dict(typing.get_type_hints(order_schema.Order))
    hints["lines"] = list[line] | None  # type: ignore[valid-type]
    order = typing.TypedDict("Order", hints, total=False)  # type: ignore[misc]
    body_hints["order"] = order | None
    body = typing.TypedDict("OrderBody", body_hints, total=False)  # type: ignore[misc]
    monkeypatch.setattr(from_webhook, "_SELECTIVE_DECODE", msgspec.json.Decoder(body).decode)
    monkeypatch.setattr(from_webhook, "_LineStruct", line)
    kind, text = _uci_bodies()[0]
    with pytest.raises(AssertionError):
        assert _check(kind, text)


def test_replacement_values_cover_the_node_types() -> None:
    """The mutations put objects, lists, null and scalars where nodes are (so the decoder's
    type checks and its fallback are exercised)."""
    kinds = {type(value) for value in REPLACEMENTS}
    assert {dict, list, type(None), str, int, float, bool} <= kinds


def test_bytes_and_no_decoder_take_the_other_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    kind, text = _uci_bodies()[0]
    assert from_webhook._order_from_selected(kind, text.encode(), API_URL) is None
    monkeypatch.setattr(from_webhook, "_SELECTIVE_DECODE", None)
    assert from_webhook._order_from_selected(kind, text, API_URL) is None
    assert _outcome(
        from_webhook.translate_stored_webhook, kind.value, text, API_URL, "k"
    ) == _json_loads_translation(kind, text)


def test_invalid_utf8_in_a_skipped_value_is_refused_as_json_loads_refuses_it() -> None:
    """msgspec does not check the UTF-8 of strings it skips: bytes never take its path (the
    acknowledgement's ``translate_webhook`` gets them), so the refusal stays ``json.loads``'."""
    kind, text = _uci_bodies()[0]
    raw = text.encode().replace(b'"name": "', b'"name": "\xff', 1)
    expected = _outcome(reference.translate_webhook, kind.value.upper(), raw, API_URL)
    assert expected[0] == "PayloadError"
    assert _outcome(from_webhook.translate_webhook, kind.value.upper(), raw, API_URL) == expected
