"""``core.bulk.row_values`` reads what ``attrgetter`` reads, from the rows' ``__dict__``."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, isolate_apps

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.core.rows import RowReader, new_instance
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine
from tests.graphql.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db


def attnames(model: Any) -> tuple[str, ...]:
    return tuple(f.attname for f in model._meta.concrete_fields)


def reference(rows: list[Any], names: tuple[str, ...]) -> list[Any]:
    return list(map(attrgetter(*names), rows))


def test_loaded_and_new_rows_give_attrgetters_values() -> None:
    customer = make_customer(1)
    order = make_order(customer, 1, lines=3)
    lines = RowReader(OrderLine).fetch("t.order_id = %s", [order.pk], order_by="t.id")
    lines += list(OrderLine.objects.filter(order=order).order_by("pk"))  # the ORM's instances
    lines.append(new_instance(OrderLine, order_id=order.pk, saleor_line_id="new", quantity=2))
    fresh = OrderLine(order=order, saleor_line_id="x", quantity=1)  # Model.__init__
    lines.append(fresh)
    for names in (attnames(OrderLine), ("order_id",), ("id", "order_id", "quantity")):
        assert bulk.row_values(lines, names) == reference(lines, names)
    orders = [order, *Order.objects.all()]
    assert bulk.row_values(orders, attnames(Order)) == reference(orders, attnames(Order))
    assert bulk.row_values([], ("id",)) == []


def test_the_dict_is_read_only_where_the_attribute_is_djangos_descriptor() -> None:
    assert bulk._dict_backed(OrderLine, attnames(OrderLine))
    assert bulk._dict_backed(Customer, ("id", "email"))
    # ``pk`` and ``order`` (the related object) are not field attributes read from the dict.
    assert not bulk._dict_backed(OrderLine, ("pk",))
    assert not bulk._dict_backed(OrderLine, ("order",))
    assert not bulk._dict_backed(Customer, ("is_erased",))  # a property

    with isolate_apps("saleor_crm_plugin"):  # kept out of the app's registry

        class Line(OrderLine):
            class Meta:
                proxy = True
                app_label = "saleor_crm_plugin"

            @property
            def quantity(self) -> int:  # type: ignore[override]
                return 99

    assert not bulk._dict_backed(Line, ("quantity",))
    row = new_instance(Line, order_id=1, saleor_line_id="p", quantity=3)
    assert bulk.row_values([row], ("quantity",)) == [99]


def test_a_deferred_field_loads_as_attrgetter_would() -> None:
    customer = make_customer(1)
    order = make_order(customer, 1, lines=2)
    names = ("id", "attributes")
    deferred = RowReader(OrderLine, defer=("attributes",)).fetch(
        "t.order_id = %s", [order.pk], order_by="t.id"
    )
    expected = reference(list(OrderLine.objects.filter(order=order).order_by("pk")), names)
    with CaptureQueriesContext(connection) as queries:
        assert bulk.row_values(deferred, names) == expected
    assert len(queries) == 2  # one per row, as the descriptor loads it


def test_rows_of_several_classes_take_attrgetter() -> None:
    customer = make_customer(1)
    order = make_order(customer, 1, lines=1)
    rows: list[Any] = [order, customer]
    assert bulk.row_values(rows, ("id",)) == [order.pk, customer.pk]
    assert bulk._primary_keys(rows) == [order.pk, customer.pk]


def test_primary_keys_are_the_pk_property() -> None:
    customer = make_customer(1)
    order = make_order(customer, 1, lines=3)
    lines = list(OrderLine.objects.filter(order=order))
    assert bulk._primary_keys(lines) == [line.pk for line in lines]
    fields = [OrderLine._meta.get_field("quantity")]
    columns = bulk.prepared_columns(lines, fields, extra_pk=True)
    assert list(columns[-1]) == [line.pk for line in lines]
    assert list(columns[0]) == [line.quantity for line in lines]
