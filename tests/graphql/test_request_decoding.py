"""The view decodes request bodies with orjson (``views._decode``) and falls back on ``json``:
every body must give what ``json.loads`` gives (value and type), or fail as it fails."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from saleor_crm_plugin.graphql.views import _decode
from tests.json_values import same_value

BODIES = [
    b'{"query": "{ me { id } }", "variables": {"first": 10, "after": null}}',
    b'[{"query": "{ a }"}, {"query": "{ b }", "operationName": "B"}]',
    b'{"a":1,"a":2}',
    b"-0",
    b"-0.0",
    b"1e400",
    b"-1e400",
    b"NaN",
    b"[1,NaN]",
    b"Infinity",
    b"-Infinity",
    b"123456789012345678901234567890",
    b'{"v": {"first": [1, -123456789012345678901234567890]}}',
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"1e19",
    b"-1e19",
    b"9.3e18",
    b'"\\ud800"',
    b'"\\ud83d\\ude00"',
    b'"a\x01b"',
    b'"a\tb"',
    b'\xef\xbb\xbf{"a":1}',
    '{"a": "é"}'.encode("utf-16"),
    '{"a": "é"}'.encode("utf-32"),
    b'{"a":"\xff"}',
    b'"\xed\xa0\x80"',
    b"[" * 3000 + b"]" * 3000,
    b"[" * 500 + b"]" * 500,
    b' {"a" : [1, 2.5e-3, true, false, null]} ',
    b'{"a":1}x',
    b"",
    b"null",
    b"1.7976931348623157e308",
    b"5e-324",
    b"0.1",
    b"1E2",
    b'"\\u0000"',
    b'{"k\\u00e9":"\xc3\xa9"}',
    b"1.0000000000000000000000000001",
    b"01",
    b"[1,]",
    b'{"a":1,}',
    b"'a'",
    b'"\\x41"',
    b'"\x7f"',
]


def _outcome(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        value = decode(body)
    except RecursionError:
        return "too deep", None
    except ValueError as exc:
        return "ValueError", type(exc)
    return "value", value


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1])
    if kind == 2:
        return rng.choice([0.0, -0.0, 0.1, 1e19, -9.3e18, 2.0**63, 1e308, rng.uniform(-1e6, 1e6)])
    if kind == 3:
        return rng.randint(-(10**30), 10**30)
    if kind == 4:
        return "".join(rng.choice(["a", "é", "😀", '"', "\\", "\n", "\u2028"]) for _ in range(5))
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{n}": _random_value(rng, depth + 1) for n in range(rng.randrange(4))}


@pytest.mark.parametrize("body", BODIES)
def test_bodies_decode_as_json_loads_decodes_them(body: bytes) -> None:
    expected, got = _outcome(json.loads, body), _outcome(_decode, body)
    assert expected[0] == got[0]
    if expected[0] == "value":
        try:
            assert same_value(expected[1], got[1])
        except RecursionError:  # the deeply nested lists: nothing but lists to compare
            assert expected[1] == got[1]


def test_random_documents_decode_as_json_loads_decodes_them() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        body = json.dumps(_random_value(rng), ensure_ascii=rng.random() < 0.5).encode()
        assert same_value(json.loads(body), _decode(body)), body
