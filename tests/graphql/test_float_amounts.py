"""The customer 360's one statement reads the amounts only ``money_of`` fields read as
``float8`` (``dataloaders.float_amounts``): the answers stay those of reading ``Decimal``s."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.customers.models import (
    Customer,
    CustomerChannelStats,
    Order,
    OrderLine,
)
from saleor_crm_plugin.graphql.customers import dataloaders
from tests.graphql.conftest import make_customer, make_order, make_stats, user_gid

MONEY = "{ amount currency }"
EVERY_AMOUNT = f"""
query {{
  me {{
    channelStats {{ currency totalSpent {MONEY} totalRefunded {MONEY} }}
    orders(first: 10) {{
      edges {{ node {{
        number total {MONEY} totalNet {MONEY} subtotal {MONEY} shippingPrice {MONEY}
        totalCharged {MONEY} totalRefunded {MONEY}
        lines {{ unitPrice {MONEY} unitPriceNet {{ amount }} totalPrice {{ amount }} }}
      }} }}
    }}
  }}
}}
"""
# numeric(20, 3) values where a float is least forgiving: the largest and smallest, long
# runs of digits, halfway cases of the 17th significant digit, negatives and zeros.
AWKWARD = [
    "0",
    "0.000",
    "-0.001",
    "0.001",
    "0.1",
    "0.3",
    "2.675",
    "1.005",
    "99999999999999999.999",
    "-99999999999999999.999",
    "12345678901234567.891",
    "9007199254740993.000",
    "9007199254740992.999",
    "4503599627370496.500",
    "0.015",
    "123456.785",
    "1e3",
]


def _awkward(rng: random.Random, count: int) -> list[str]:
    values = list(AWKWARD)
    for _ in range(count):
        digits = rng.randint(1, 17)
        whole = rng.randrange(10**digits)
        sign = "-" if rng.random() < 0.2 else ""
        values.append(f"{sign}{whole}.{rng.randrange(1000):03d}")
    return values


def test_numeric_read_as_float8_is_the_float_of_its_decimal(db):
    """What the reads rely on: PostgreSQL's ``numeric(20, 3)`` cast to ``float8`` and read
    by psycopg is ``float(Decimal(text))`` of the same numeric, over 20,000 values."""
    values = _awkward(random.Random(3), 20_000)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v::numeric(20, 3)::text, v::numeric(20, 3)::float8 "
            "FROM unnest(%s::text[]) AS v",
            [values],
        )
        rows = cursor.fetchall()
    assert len(rows) == len(values)
    for text, as_float in rows:
        expected = float(Decimal(text))
        assert as_float.__class__ is float
        assert (as_float, repr(as_float)) == (expected, repr(expected)), text


def test_float_amounts_are_the_amounts_only_money_fields_read(db):
    dataloaders._FLOAT_AMOUNTS.clear()
    assert dataloaders.float_amounts("CrmOrder", Order) == {
        "total_gross",
        "total_net",
        "subtotal_gross",
        "shipping_gross",
        "total_charged",
        "total_refunded",
    }
    assert dataloaders.float_amounts("CrmOrderLine", OrderLine) == {
        "unit_price_gross",
        "unit_price_net",
        "total_price_gross",
    }
    assert dataloaders.float_amounts("CrmCustomerChannelStats", CustomerChannelStats) == {
        "total_spent",
        "total_refunded",
    }
    # The customer's own figures are not money fields: none.
    assert dataloaders.float_amounts("CrmCustomer", Customer) == frozenset()


def test_float_amounts_leave_out_what_another_field_reads(db, monkeypatch):
    """An amount another field reads (or any field of unknown reads) stays a Decimal."""
    from saleor_crm_plugin.graphql.api import schema
    from saleor_crm_plugin.graphql.core.selection import reads

    fields = schema.get_type("CrmOrder").fields

    @reads("total_gross")
    def other(root: Any, info: Any) -> Any:
        return root.total_gross

    monkeypatch.setattr(fields["number"], "resolver", other)
    dataloaders._FLOAT_AMOUNTS.clear()
    found = dataloaders.float_amounts("CrmOrder", Order)
    assert "total_gross" not in found and "total_net" in found

    monkeypatch.setattr(fields["number"], "resolver", lambda root, info: root.number)
    dataloaders._FLOAT_AMOUNTS.clear()
    assert dataloaders.float_amounts("CrmOrder", Order) == frozenset()
    dataloaders._FLOAT_AMOUNTS.clear()


@pytest.fixture
def awkward_shopper(db):
    """Orders, lines and stats whose every amount is one of ``_awkward``'s."""
    rng = random.Random(11)
    amounts = iter(_awkward(rng, 400))
    customer = make_customer(1)
    for n in range(1, 9):
        order = make_order(customer, n, lines=3)
        for name in dataloaders.float_amounts("CrmOrder", Order):
            setattr(order, name, Decimal(next(amounts)))
        order.save()
        for line in order.lines.all():
            for name in dataloaders.float_amounts("CrmOrderLine", OrderLine):
                setattr(line, name, Decimal(next(amounts)))
            line.save()
    make_stats(customer, total_spent=Decimal(next(amounts)), total_refunded=Decimal("0.1"))
    make_stats(customer, channel="eu", currency="EUR", total_spent=Decimal(next(amounts)))
    return customer


@pytest.mark.usefixtures("executors_only")  # the executors' own statement is checked
def test_amounts_read_as_floats_answer_as_decimals(
    saleor, mint, client, awkward_shopper, monkeypatch
):
    """Every Money field of ``me``'s statement, read as ``float8``, answers the bytes the
    same read of ``Decimal``s answers (``float_amounts`` emptied), in one statement."""
    token = mint(user_gid(1))
    dataloaders._FLOAT_AMOUNTS.clear()

    def post() -> bytes:
        response = client.post(
            "/graphql/",
            data=json.dumps({"query": EVERY_AMOUNT}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
        return response.content

    post()  # warm the instance cache
    with CaptureQueriesContext(connection) as queries:
        as_floats = post()
    (sql,) = [q["sql"] for q in queries.captured_queries]
    for column in ("total_gross", "total_refunded", "unit_price_net", "total_spent"):
        assert f'."{column}"::float8 AS "{column}"' in sql
    assert b'"errors"' not in as_floats

    monkeypatch.setattr(dataloaders, "float_amounts", lambda type_name, model: frozenset())
    monkeypatch.setattr(dataloaders, "_WITH_ORDERS_READS", {})  # the reads, made again
    with CaptureQueriesContext(connection) as queries:
        as_decimals = post()
    assert "::float8" not in queries.captured_queries[0]["sql"]
    assert as_floats == as_decimals
    lines = json.loads(as_floats)["data"]["me"]["orders"]["edges"][0]["node"]["lines"]
    assert len(lines) == 3


def test_amounts_read_as_floats_are_floats_on_the_instances(awkward_shopper):
    """The instances of the statement carry floats where the fields read floats, Decimals
    elsewhere (the columns left out of ``float_amounts``)."""
    from saleor_crm_plugin.graphql.core.context import GraphQLContext

    dataloaders._FLOAT_AMOUNTS.clear()
    loader = dataloaders.CustomerByUserIdLoader(
        GraphQLContext(),
        frozenset({"id", "saleor_user_id"}),
        dataloaders.WithOrders(
            first=10,
            last=None,
            channel=None,
            include_drafts=False,
            columns=frozenset({"total_gross", "currency", "total_tax"}),
            lines=dataloaders.WithLines(frozenset({"unit_price_gross", "quantity"})),
        ),
    )
    customer = loader._with_orders(user_gid(1), loader.with_orders)
    assert customer is not None
    order = customer.__dict__[dataloaders._ORDERS_ATTR][1].edges[0].node
    assert order.total_gross.__class__ is float
    assert order.total_tax.__class__ is Decimal or order.total_tax is None
    line = order.__dict__[dataloaders._LINES_ATTR][0]
    assert line.unit_price_gross.__class__ is float
    assert line.unit_price_gross == float(OrderLine.objects.get(pk=line.pk).unit_price_gross)
