"""``RowReader._build`` for rows with converted columns (the batch's lines, orders and
customers: JSON columns) builds, column by column (``core.rows._converted``), the instances the
row-by-row loop built (kept here verbatim as the oracle): same values of the same types, same
``__dict__`` order, same state; and ``_json_from_db``'s shortcut for ``[]``/``{}`` gives
what Django's converter gives, a new object each time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from saleor_crm_plugin.core.rows import RowReader, _json_from_db, bare_instance
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine, OrderStatus
from tests.json_values import same_value

JSON_FIELD = Customer._meta.get_field("metadata")
JSON_COLUMN = JSON_FIELD.get_col("t")


def _old_build(reader: RowReader[Any], prepared: Any, rows: Any, extra_names: list[str]) -> list:
    """``RowReader._build``'s loop for rows with converters, as it was."""
    _, attnames, converters, plain, _ = prepared
    width = len(attnames)
    model = reader.model
    using = reader.using
    result = []
    for row in rows:
        values = list(row[:width])
        for index, pairs in converters:
            value = values[index]
            for converter, column in pairs:
                value = converter(value, column, connection)
            values[index] = value
        if plain:
            instance = bare_instance(model, zip(attnames, values), using)  # noqa: B905
        else:
            instance = model.from_db(using, attnames, values)
        for name, value in zip(extra_names, row[width:]):  # noqa: B905
            setattr(instance, name, value)
        result.append(instance)
    return result


def _same_instances(new: list, old: list) -> None:
    assert len(new) == len(old)
    for a, b in zip(new, old, strict=True):
        assert type(a) is type(b)
        assert list(a.__dict__) == list(b.__dict__)
        for key in a.__dict__:
            if key == "_state":
                assert (a._state.adding, a._state.db) == (b._state.adding, b._state.db)
                assert a._state is not b._state
            else:
                assert same_value(a.__dict__[key], b.__dict__[key]), key
                if isinstance(a.__dict__[key], list | dict):
                    assert a.__dict__[key] is not b.__dict__[key]


_JSON_VALUES = [
    [],
    {},
    [[]],
    [{}],
    {"a": []},
    ["size:xl", "color:red"],
    {"big": 2**70, "float": 0.1, "text": "é😀\t", "list": [1, None, True]},
    {"versions": {"email": 1733011200123456}},
    [0.5, -0.0, 1e16],
    "text",
    12,
    None,
]


def _generate(rng: random.Random) -> list[int]:
    customers = []
    for n in range(rng.randrange(1, 8)):
        customers.append(
            Customer.objects.create(
                email=f"c{n}@example.com",
                metadata=rng.choice(_JSON_VALUES[:9] + [{}] * 4),
                field_versions=rng.choice([{}, {"email": f"0|{n}"}, {"x": [1, 2]}]),
                date_joined=rng.choice([None, datetime(2026, 1, 2, tzinfo=UTC)]),
            )
        )
    orders = []
    for n in range(rng.randrange(1, 6)):
        order = Order.objects.create(
            saleor_order_id=f"o{n}",
            customer=rng.choice([*customers, None]),
            channel_id="c",
            currency="USD",
            status=rng.choice(list(OrderStatus)),
            total_gross=rng.choice([None, Decimal("1.250")]),
            created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
            field_versions=rng.choice([{}, {"status": "0|x"}]),
        )
        orders.append(order)
        for m in range(rng.randrange(0, 6)):
            OrderLine.objects.create(
                order=order,
                saleor_line_id=f"l{m}",
                attributes=rng.choice(_JSON_VALUES[:10] + [[]] * 6),
                quantity=rng.randrange(1, 5),
                unit_price_gross=Decimal(rng.randrange(0, 10**6)) / 1000,
                unit_price_net=Decimal("0.5"),
                total_price_gross=Decimal(rng.randrange(0, 10**6)) / 100,
            )
    return [order.pk for order in orders]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(12))
def test_converted_rows_build_the_instances_the_row_loop_built(seed: int) -> None:
    rng = random.Random(seed)
    _generate(rng)
    for model in (OrderLine, Order, Customer):
        reader = RowReader(model)
        for only in (None, frozenset({"metadata", "email"} if model is Customer else {"pk"})):
            prepared = reader._prepare(only)
            for extra in ([], ["marker"], ["marker", "other"]):
                sql = prepared[0]
                if extra:
                    columns = {1: ", 7", 2: ", 7, 'x'"}[len(extra)]
                    sql = sql.replace(" FROM ", f"{columns} FROM ", 1)
                with connection.cursor() as cursor:
                    cursor.execute(f"{sql} ORDER BY t.id")
                    rows = cursor.fetchall()
                new = reader._build(prepared, rows, extra, connection)
                old = _old_build(reader, prepared, rows, extra)
                _same_instances(new, old)
                for instance, row in zip(new, rows, strict=True):
                    for name, value in zip(extra, row[len(prepared[1]) :], strict=True):
                        assert getattr(instance, name) == value
    # The readers' own statements, the batch's (every column).
    assert RowReader(OrderLine).fetch("TRUE", [], order_by="t.id") is not None


@pytest.mark.parametrize(
    "text", ["[]", "{}", "[ ]", "{ }", " []", "[]\n", "[[]]", "{}x", "[", "", "null", None]
)
def test_empty_json_texts_read_as_django_reads_them(text: str | None) -> None:
    new = _json_from_db(text, JSON_COLUMN, connection)
    old = JSON_FIELD.from_db_value(text, JSON_COLUMN, connection)
    assert same_value(new, old), (new, old)
    again = _json_from_db(text, JSON_COLUMN, connection)
    if isinstance(new, list | dict):
        assert again is not new  # a fresh object: callers mutate what they read
