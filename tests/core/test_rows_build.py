"""``RowReader._build`` without ``zip(strict=True)``: rows of the wrong width are still refused
(one check per statement instead of one per row), and instances are as before."""

from __future__ import annotations

from typing import Any

import pytest

from saleor_crm_plugin.core.rows import RowReader
from saleor_crm_plugin.customers.models import Order
from tests.graphql.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db


def _prepared_and_rows(reader: RowReader[Any]) -> tuple[Any, list[tuple[Any, ...]]]:
    from django.db import connection

    prepared = reader._prepare(None)
    select = prepared[0]
    with connection.cursor() as cursor:
        cursor.execute(f"{select} ORDER BY t.id")
        return prepared, cursor.fetchall()


@pytest.mark.parametrize("extra", [[], ["marker"]])
def test_rows_of_the_wrong_width_are_refused(extra: list[str]) -> None:
    make_order(make_customer(1), 1)
    reader = RowReader(Order)
    prepared, rows = _prepared_and_rows(reader)
    from django.db import connection

    padded = [(*row, 7) for row in rows] if extra else rows
    built = reader._build(prepared, padded, extra, connection)
    assert [o.pk for o in built] == [row[0] for row in rows]
    if extra:
        assert [o.marker for o in built] == [7]
    for wrong in ([row[:-1] for row in padded], [(*row, 8) for row in padded]):
        with pytest.raises(ValueError):
            reader._build(prepared, wrong, extra, connection)
    assert reader._build(prepared, [], extra, connection) == []


def test_instances_are_those_of_the_orm() -> None:
    customer = make_customer(1)
    for n in range(1, 4):
        make_order(customer, n)
    read = RowReader(Order).fetch("t.customer_id = %s", [customer.pk], order_by="t.id")
    expected = list(Order.objects.filter(customer=customer).order_by("pk"))
    fields = Order._meta.concrete_fields
    assert [[getattr(o, f.attname) for f in fields] for o in read] == [
        [getattr(o, f.attname) for f in fields] for o in expected
    ]
    assert all(o._state.adding is False and o._state.db == "default" for o in read)
    assert [next(iter(o.__dict__)) for o in read] == ["_state"] * 3


def test_extra_columns_are_set_as_setattr_sets_them(monkeypatch: Any) -> None:
    """Extra columns go into the instance's ``__dict__`` in one update only where ``setattr``
    would put them there: a data descriptor (a property with a setter, a foreign key's
    attname) still receives its value through ``setattr``."""
    from django.db import connection

    from saleor_crm_plugin.core import rows as rows_module

    customer = make_customer(1)
    make_order(customer, 1)
    reader = RowReader(Order)
    prepared, found = _prepared_and_rows(reader)
    seen: list[Any] = []
    monkeypatch.setattr(
        Order,
        "tagged",
        property(lambda self: "read", lambda self, v: seen.append(v)),
        raising=False,
    )
    plain = reader._build(
        prepared, [(*row, 7, "x") for row in found], ["_total", "label"], connection
    )
    assert (plain[0].__dict__["_total"], plain[0].__dict__["label"]) == (7, "x")
    assert list(plain[0].__dict__)[-2:] == ["_total", "label"]
    rows_module._NAMES_WITH.clear()
    other = make_customer(2)
    described = reader._build(
        prepared,
        [(*row, "v", other.pk) for row in found],
        ["tagged", "customer_id"],
        connection,
    )
    assert seen == ["v"] and "tagged" not in described[0].__dict__
    assert described[0].customer_id == other.pk
    assert rows_module._names_with(Order, prepared[1], ["tagged"]) is None
    assert rows_module._names_with(Order, prepared[1], ["_total", "total_gross"]) is not None
