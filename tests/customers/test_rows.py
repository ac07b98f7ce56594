"""``core/rows.py`` must hand back what the ORM would: same values, same types, deferral."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.core.rows import RowReader, placeholders
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine
from tests.graphql.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db


def values(instance: Any) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_instances_equal_the_orms() -> None:
    customer = make_customer(1, metadata={"birthday": "1990-01-02"})
    order = make_order(customer, 1, lines=3)
    OrderLine.objects.filter(order=order).update(attributes=[{"slug": "size", "values": ["M"]}])
    for model, where, params in [
        (Customer, "t.id = %s", [customer.pk]),
        (Order, "t.customer_id = %s", [customer.pk]),
        (OrderLine, "t.order_id = %s", [order.pk]),
    ]:
        read = RowReader(model).fetch(where, params, order_by="t.id")
        expected = list(model.objects.filter(pk__in=[r.pk for r in read]).order_by("pk"))
        assert [values(r) for r in read] == [values(e) for e in expected]
        assert all(not r._state.adding and r._state.db == "default" for r in read)
        assert [type(v) for v in values(read[0]).values()] == [
            type(v) for v in values(expected[0]).values()
        ]


def test_deferred_columns_load_on_first_access() -> None:
    customer = make_customer(1)
    order = make_order(customer, 1, lines=2)
    OrderLine.objects.filter(order=order).update(attributes=[{"slug": "colour"}])
    lines = RowReader(OrderLine, defer=("attributes",)).fetch(
        f"t.order_id IN ({placeholders([order.pk])})", [order.pk]
    )
    assert lines[0].get_deferred_fields() == {"attributes"}
    with CaptureQueriesContext(connection) as queries:
        assert lines[0].attributes == [{"slug": "colour"}]
    assert len(queries) == 1
    assert "attributes" not in lines[1].__dict__


def test_extra_columns_and_limit() -> None:
    customer = make_customer(1)
    for n in range(1, 4):
        make_order(customer, n)
    rows = RowReader(Order).fetch(
        "t.customer_id = %s",
        [customer.pk],
        order_by="t.created_at DESC, t.id DESC",
        limit=2,
        extra=[("_total", "COUNT(*) OVER ()")],
    )
    assert [o.number for o in rows] == ["3", "2"]
    assert [o._total for o in rows] == [3, 3]
