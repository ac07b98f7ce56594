"""The GraphQL answer's JSON: orjson where it can, the standard encoder where orjson refuses,
and the same document as ``JsonResponse`` would send in every case."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.functional import lazy

from saleor_crm_plugin.graphql.views import _encode, _json


class _Colour(StrEnum):
    RED = "RED"


_lazy_text = lazy(lambda: "lazy text", str)

CASES: list[Any] = [
    {"data": {"me": None}},
    {"data": {"me": {"email": "zoë@example.com", "name": '東京 \u2028 "quoted" \\ tab\t'}}},
    {"data": {"n": 2**63 - 1, "m": -(2**63), "f": 0.1, "g": 1e16, "h": -0.0, "b": True}},
    {"data": {"orders": [{"id": "T3JkZXI6MQ==", "lines": [{"q": 3}]}] * 3}},
    {"errors": [{"message": _lazy_text(), "extensions": {"exception": {"code": _Colour.RED}}}]},
    {"when": datetime.datetime(2026, 12, 1, 9, 30, 5, 123456, tzinfo=datetime.UTC)},
    {"day": datetime.date(2026, 12, 1), "at": datetime.time(9, 30, 5, 120000)},
    {"amount": Decimal("12.30"), "id": uuid.UUID(int=7), "took": datetime.timedelta(seconds=90)},
    [{"data": {"a": 1}}, {"data": {"b": 2}}],
    # orjson refuses these; the standard encoder answers them.
    {"data": {"huge": 2**70}},
    {"data": {1: "integer key"}},
]


@pytest.mark.parametrize("value", CASES)
def test_same_document_as_json_response(value: Any) -> None:
    reference = json.loads(DjangoJSONEncoder().encode(value))
    assert json.loads(_encode(value)) == reference


def test_datetimes_keep_djangos_format() -> None:
    # orjson on its own writes "+00:00" and keeps microseconds; JsonResponse did not.
    at = datetime.datetime(2026, 12, 1, 9, 30, 5, 123456, tzinfo=datetime.UTC)
    assert _encode({"at": at}) == b'{"at":"2026-12-01T09:30:05.123Z"}'


def test_non_finite_float_is_valid_json() -> None:
    # ``json`` would write the token NaN, which no strict JSON parser reads.
    assert _encode({"x": float("nan"), "y": float("inf")}) == b'{"x":null,"y":null}'


def test_unencodable_value_raises_as_before() -> None:
    with pytest.raises(TypeError):
        _encode({"x": object()})


def test_response_headers_and_status() -> None:
    response = _json({"errors": [{"message": "Use POST."}]}, 405)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"errors": [{"message": "Use POST."}]}
