"""Line variants kept as raw text by the selective decoder and decoded once per distinct text
(``order_schema.SelectedLine``, ``from_webhook._variant_facts``, feat/w18) against the
translation on ``json.loads``' tree.

The snapshot takes ten values from a line's ``variant`` node; the worker's decoder keeps that
node as its JSON text and ``_variant_facts`` decodes each distinct text once (by the schema's
own ``LineVariant``), remembering what the snapshot takes. The events must be those of
``json.loads``' tree whether the memo is cold, warm, or holds the text from another order, for
every shape a variant can take; the selective path may only give up. Uses
``test_selective_orders._check`` (the selective event, when there is one, equals the
reference translation on ``json.loads``' tree, and so does the worker's entry point)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import msgspec
import pytest

from saleor_crm_plugin.events import from_webhook, order_schema
from saleor_crm_plugin.events.types import EventKind
from tests.events.test_selective_orders import API_URL, _check, _uci_bodies

_SHAPES: list[Any] = [
    None,
    {},
    [],
    "UHJvZHVjdFZhcmlhbnQ6MQ==",
    7,
    1.5,
    True,
    {"id": None, "sku": None},
    {"id": "", "sku": ""},
    {"id": 12345678901234567890123, "sku": 3},
    {"product": None},
    {"product": {}},
    {"product": []},
    {"product": "p"},
    {"product": {"category": None, "productType": None}},
    {"product": {"category": "c"}},
    {"product": {"category": {"id": 1, "slug": 2.5}, "productType": {"id": "t", "slug": ""}}},
    {"product": {"attributes": None}},
    {"product": {"attributes": []}},
    {"product": {"attributes": {}}},
    {"product": {"attributes": [None]}},
    {"product": {"attributes": [{"attribute": {"slug": "size"}, "values": [{"slug": "m"}]}]}},
    {
        "product": {
            "attributes": [
                {"attribute": {"slug": "size"}, "values": [{"slug": "m"}, {"slug": "l"}]},
                {"attribute": {"slug": "colour"}, "values": [{"slug": "red"}, {"slug": ""}]},
                {"attribute": None, "values": [{"slug": "x"}]},
                {"attribute": {"slug": "n"}, "values": None},
            ]
        }
    },
]


# Values put under a variant's or product's key. Not a container holding an integer past 64
# bits: orjson's path (taken when the selective one gives up) reads that as a float and does
# not look inside containers for one, a divergence older than this test (see the report).
_VALUES: list[Any] = [
    shape for shape in _SHAPES if not (isinstance(shape, dict) and "id" in shape and shape["id"])
] + [12345678901234567890123, "x", ""]


def _line_variants(rng: random.Random, lines: list[dict[str, Any]]) -> None:
    """Give some lines another variant shape: a listed one, a real one with a key dropped,
    nulled or renamed, or a key repeated in the text (``_duplicated``)."""
    for line in lines:
        if not isinstance(line, dict):
            continue
        roll = rng.random()
        if roll < 0.15:
            line["variant"] = copy.deepcopy(rng.choice(_SHAPES))
        elif roll < 0.2:
            line.pop("variant", None)
        elif roll < 0.35 and isinstance(line.get("variant"), dict):
            variant = line["variant"]
            product = variant.get("product")
            target = product if isinstance(product, dict) and rng.random() < 0.6 else variant
            if target:
                key = rng.choice(sorted(target))
                if rng.random() < 0.5:
                    target.pop(key)
                else:
                    target[key] = copy.deepcopy(rng.choice(_VALUES))
            if rng.random() < 0.3 and isinstance(product, dict):
                product["productType"] = {"id": f"t{rng.randrange(3)}", "slug": "t"}
                product["attributes"] = copy.deepcopy(rng.choice(_SHAPES[-3:]))["product"][
                    "attributes"
                ]


def _duplicated(text: str) -> str:
    """The first variant's ``sku`` given twice (msgspec and ``json.loads`` keep the last)."""
    return text.replace('"sku": "', '"sku": "first", "sku": "', 1)


def _variants_of(text: str) -> list[bytes]:
    body = json.loads(text)
    return [json.dumps(line.get("variant")).encode() for line in body["order"]["lines"]]


def test_lines_are_decoded_with_raw_variants() -> None:
    _, text = _uci_bodies()[0]
    decoded = from_webhook._SELECTIVE_DECODE(text)  # type: ignore[misc]
    line = decoded["order"]["lines"][0]
    assert type(line) is order_schema.SelectedLine
    assert type(line.variant) is msgspec.Raw
    assert json.loads(bytes(line.variant)) == json.loads(text)["order"]["lines"][0]["variant"]


def test_selected_line_is_line_but_for_the_variant() -> None:
    """``SelectedLine`` is built from ``Line``: a field added to ``Line`` is decoded for it
    too, with the same type and default."""
    line = {f.name: (f.type, f.default) for f in msgspec.structs.fields(order_schema.Line)}
    selected = {
        f.name: (f.type, f.default) for f in msgspec.structs.fields(order_schema.SelectedLine)
    }
    assert list(line) == list(selected)
    assert selected.pop("variant") == (msgspec.Raw, order_schema.NULL_RAW)
    line.pop("variant")
    assert line == selected
    assert order_schema.VariantNode == (order_schema.LineVariant | None)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_variant_shapes_translate_as_json_loads_reads_them(
    monkeypatch: pytest.MonkeyPatch, warm: bool
) -> None:
    """Generated variant shapes in UCI bodies, each body checked with the memo cold and with
    it holding every variant text of the body already (from another order event)."""
    rng = random.Random(f"variant-facts-{warm}")
    bodies = [json.loads(text) for _, text in _uci_bodies()[:40]]
    taken = 0
    for round_ in range(600):
        body = copy.deepcopy(bodies[round_ % len(bodies)])
        _line_variants(rng, body["order"]["lines"])
        text = json.dumps(body)
        if round_ % 7 == 0:
            text = _duplicated(text)
        kind = rng.choice([k for k in EventKind if k.is_order])
        if warm:
            _check(kind, text)  # fills the memo with this body's variants
        else:
            monkeypatch.setattr(from_webhook, "_VARIANT_FACTS", {})
        taken += _check(kind, text)
    assert taken > 150  # a third of the bodies keep every variant a shape the schema takes


def test_a_memo_filled_by_other_orders_gives_the_same_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """150 UCI bodies translated in order with one memo (what a worker does), then each again
    with an empty one: the same events; the memo holds each distinct variant text once."""
    monkeypatch.setattr(from_webhook, "_VARIANT_FACTS", {})
    bodies = _uci_bodies()
    warm = [from_webhook._order_from_selected(kind, text, API_URL) for kind, text in bodies]
    texts = {variant for _, text in bodies for variant in _variants_of(text)}
    assert len(from_webhook._VARIANT_FACTS) == len(texts)
    assert sum(len(_variants_of(text)) for _, text in bodies) > len(texts)  # hits happened
    for (kind, text), event in zip(bodies, warm, strict=True):
        monkeypatch.setattr(from_webhook, "_VARIANT_FACTS", {})
        cold = from_webhook._order_from_selected(kind, text, API_URL)
        assert event is not None and cold is not None
        assert repr(event) == repr(cold)
        assert _check(kind, text)


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(from_webhook, "_VARIANT_FACTS", {})
    monkeypatch.setattr(from_webhook, "_VARIANT_FACTS_MAX", 5)
    for kind, text in _uci_bodies()[:30]:
        assert _check(kind, text)
        assert len(from_webhook._VARIANT_FACTS) <= 5


def test_the_typed_line_reads_as_the_raw_line() -> None:
    """``order_schema.Line`` (the variant decoded in the body) still translates, to the same
    event: ``_struct_line`` takes both."""
    typed = msgspec.json.Decoder(order_schema.OrderBody).decode
    for kind, text in _uci_bodies()[:30]:
        body = typed(text)
        assert type(body["order"]["lines"][0]) is order_schema.Line
        event = from_webhook._from_subscription(kind, body, API_URL)
        assert repr(event) == repr(from_webhook._order_from_selected(kind, text, API_URL))


def test_a_variant_the_schema_refuses_gives_up_and_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(from_webhook, "_VARIANT_FACTS", {})
    kind, text = _uci_bodies()[0]
    body = json.loads(text)
    body["order"]["lines"][0]["variant"] = {"product": {"category": "not an object"}}
    text = json.dumps(body)
    assert from_webhook._order_from_selected(kind, text, API_URL) is None
    assert b'"not an object"' not in b"".join(from_webhook._VARIANT_FACTS)
    assert not _check(kind, text)
