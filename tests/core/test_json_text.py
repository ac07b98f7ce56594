"""``core.bulk.json_value_text``: JSON columns' lists and dicts written by orjson where it
gives the same JSON value as ``json.dumps`` (the old path, kept here as the oracle), and by
``json.dumps`` itself for whatever orjson would write differently or refuse."""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

from saleor_crm_plugin.core.bulk import json_value_text
from saleor_crm_plugin.customers.models import Customer

FIELD = Customer._meta.get_field("metadata")


class _Str(str):
    pass


class _Int(int):
    def __repr__(self) -> str:
        return "not-an-int"


class _Color(enum.IntEnum):
    RED = 7


# What the app's JSON columns hold (field versions, metadata, write-back items, lines'
# attributes) and the awkward corners of JSON numbers and strings.
SAME = [
    {"email": 1733011200123456, "first_name": 1733011200123457},
    {"key": "value", "empty": "", "é€😀": 'tab\there\nnew line \\ " \u2028 \x01\x1f'},
    ["size:xl", "color:red"],
    {"nested": {"list": [1, -1, 0, 2**63 - 1, -(2**63), 2**64 - 1, True, False, None]}},
    [0.1, -0.0, 0.0, 1e16, 1.5e-7, 1e308, 5e-324, 123456.789, 1.0, -2.5],
    [[], {}, [[]], {"a": {}}],
    {"tuple": (1, "two")},
    [_Color.RED],
]

# orjson would write these differently (NaN as null, subclasses through their own
# ``repr``/``str``) or refuse them: the old path's text, or its error, is kept.
FALLBACK = [
    [float("nan")],
    {"inf": math.inf, "-inf": -math.inf},
    [2**64],
    [-(2**63) - 1],
    {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
    ["\ud800 lone surrogate"],
    [_Str("str subclass")],
    [_Int(3)],
    {"plain null": None},
]

REFUSED = [[datetime(2026, 12, 1, tzinfo=UTC)], [date(2026, 12, 1)], [Decimal("1.5")]]


def _jsonb(text: str) -> Any:
    """The value PostgreSQL stores for ``text`` in a ``jsonb`` column, read back as text."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", [text])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("value", SAME, ids=range(len(SAME)))
def test_same_json_value_as_json_dumps(value: Any) -> None:
    text = json_value_text(value, FIELD)
    assert json.loads(text) == json.loads(json.dumps(value))


@pytest.mark.django_db
@pytest.mark.parametrize("value", SAME, ids=range(len(SAME)))
def test_jsonb_stores_the_same_value(value: Any) -> None:
    assert _jsonb(json_value_text(value, FIELD)) == _jsonb(json.dumps(value))


@pytest.mark.parametrize("value", FALLBACK, ids=range(len(FALLBACK)))
def test_json_dumps_text_where_orjson_differs(value: Any) -> None:
    assert json_value_text(value, FIELD) == json.dumps(value)


@pytest.mark.parametrize("value", REFUSED, ids=range(len(REFUSED)))
def test_refused_as_json_dumps_refuses(value: Any) -> None:
    with pytest.raises(TypeError) as old:
        json.dumps(value)
    with pytest.raises(TypeError) as new:
        json_value_text(value, FIELD)
    assert str(new.value) == str(old.value)


def test_field_encoder_kept() -> None:
    field = models.JSONField(encoder=DjangoJSONEncoder)
    value = {"at": datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC), "n": Decimal("1.50")}
    assert json_value_text(value, field) == json.dumps(value, cls=DjangoJSONEncoder)


def test_empty_containers() -> None:
    assert json_value_text([], FIELD) == "[]"
    assert json_value_text({}, FIELD) == "{}"
