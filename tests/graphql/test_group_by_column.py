"""``group_by_column`` (reads a column from the instance's ``__dict__``) groups model
instances as ``group_by`` (``getattr``) does, a deferred column included."""

from __future__ import annotations

import pytest

from saleor_crm_plugin.customers.models import Order, OrderLine
from saleor_crm_plugin.graphql.core.dataloaders import group_by, group_by_column
from tests.graphql.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db


def _ids(groups: dict) -> dict:
    return {key: [row.pk for row in rows] for key, rows in groups.items()}


def test_groups_equal_group_bys() -> None:
    customers = [make_customer(n) for n in (1, 2)]
    for n in range(1, 5):
        make_order(customers[n % 2], n, lines=n)
    for model, attname in ((OrderLine, "order_id"), (Order, "customer_id")):
        rows = list(model.objects.order_by("?"))
        assert list(_ids(group_by_column(rows, attname)).items()) == list(
            _ids(group_by(rows, attname)).items()
        )
        assert len(group_by_column(rows, attname)) > 1


def test_a_deferred_column_is_loaded_as_getattr_loads_it(django_assert_num_queries) -> None:
    customer = make_customer(1)
    make_order(customer, 1, lines=3)
    make_order(customer, 2, lines=2)
    expected = _ids(group_by(list(OrderLine.objects.order_by("id")), "order_id"))
    rows = list(OrderLine.objects.order_by("id").only("id"))
    with django_assert_num_queries(len(rows)):  # one refresh per deferred read, as getattr
        found = group_by_column(rows, "order_id")
    assert _ids(found) == expected
    assert all("order_id" in row.__dict__ for row in rows)
