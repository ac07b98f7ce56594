"""The worker parses webhook bodies with orjson; what it returns, accepts and refuses must stay
``json.loads``'s, since money and quantities are read from the parsed floats and integers."""

from __future__ import annotations

import json
import random
import struct
from dataclasses import fields
from decimal import Decimal

import pytest

from saleor_crm_plugin.events.from_webhook import _loads
from saleor_crm_plugin.events.types import OrderLineSnapshot, line_snapshot

BODIES = [
    '{"amount": 45.97, "quantity": 3}',
    '{"amount": 123456789012345678901234567890}',  # beyond 64 bits: orjson would give a float
    "[-9223372036854775809, 18446744073709551616, 18446744073709551615]",
    '{"a": 12345678901234567890.5, "b": 1.0000000000000000000000001}',
    "[NaN, Infinity, -Infinity]",  # not JSON, but json.loads takes them
    "[1e400, -0.0, 0.1e-400, 5e-324]",
    '{"s": "\\ud800"}',  # lone surrogate escape
    '{"a": 1, "a": 2}',
    '\ufeff{"a": 1}',  # byte-order mark in text: refused
    "[",
    "",
]


def _outcome(parse, body):
    try:
        return ("ok", repr(parse(body)))
    except json.JSONDecodeError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("body", BODIES)
def test_loads_is_json_loads_on_text_and_bytes(body: str) -> None:
    assert _outcome(_loads, body) == _outcome(json.loads, body)
    try:
        raw = body.encode()
    except UnicodeEncodeError:
        return
    assert _outcome(_loads, raw) == _outcome(json.loads, raw)


def test_bytes_in_other_encodings_and_with_a_bom_parse_as_json_loads_parses_them() -> None:
    for raw in ('{"a": 1.5}'.encode("utf-16"), b'\xef\xbb\xbf{"a": 1}'):
        assert _outcome(_loads, raw) == _outcome(json.loads, raw)


def test_floats_round_trip_as_json_loads_gives_them() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        bits = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        literal = repr(bits) if bits == bits and abs(bits) != float("inf") else "1.5"
        decimal = f"{rng.randint(0, 10**7)}.{rng.randint(0, 999):03d}"
        body = f"[{literal}, {decimal}]"
        assert repr(_loads(body)) == repr(json.loads(body))


def test_line_snapshot_equals_the_dataclass_constructor() -> None:
    values = [f"v{i}" for i in range(len(fields(OrderLineSnapshot)))]
    values[3] = 2
    values[4:7] = [Decimal("1.000")] * 3
    fast = line_snapshot(*values)
    assert fast == OrderLineSnapshot(*values)
    assert hash(fast) == hash(OrderLineSnapshot(*values))
    with pytest.raises(ValueError):
        line_snapshot(*values[:-1])
