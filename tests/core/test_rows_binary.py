"""``core.rows`` reads a statement's rows in binary once it knows every column loads into
the same value that way: the rows must equal the text ones (values, classes, tzinfo
objects), and statements with any other column, or a loader that is not psycopg's own,
must stay in text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from psycopg.pq import Format

from saleor_crm_plugin.core import rows
from saleor_crm_plugin.core.rows import Read, RowReader, fetch_together
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine
from tests.graphql.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db
# The connection itself, as ``core.rows`` gets it (``django.db.connection`` is a proxy, whose
# own ``__dict__`` would hold a cursor of its own).
connection = connections["default"]

INSTANTS = [
    datetime(2026, 12, 1, 10, 15, 30, 123456, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 7, 1, 14, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1999, 2, 28, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-8))),
]
# Amounts read as ``float8`` (``_as_floats``): the double nearest each, in both formats.
AMOUNTS = ["0", "0.001", "0.1", "14.000", "123456789.123", "-42.5", "999999999.999", "1e-3"]


@pytest.fixture(autouse=True)
def _fresh_cursor() -> Any:
    """Each test starts from (and leaves) a new cursor: formats learnt, loaders registered."""
    rows._server_cursor(connection).close()
    yield
    rows._server_cursor(connection).close()


def _entry() -> Any:
    entry = rows._cursor_entry(connection)
    assert entry is not None
    return entry


def _typed(value: Any) -> Any:
    """``value`` with its class (and a datetime's tzinfo object) so equal values of other
    classes, or in another zone object, differ."""
    if isinstance(value, list | tuple):
        return [_typed(v) for v in value]
    if isinstance(value, datetime):
        return (value, id(value.tzinfo))
    return (type(value), value)


def _seed() -> list[Customer]:
    customers = []
    for n, instant in enumerate(INSTANTS, start=1):
        customer = make_customer(n, is_active=bool(n % 2), first_name="Zoë ñ 漢字" * (n % 3))
        Customer.objects.filter(pk=customer.pk).update(
            first_order_at=instant, last_order_at=None if n % 2 else instant, order_count=n**9
        )
        order = make_order(customer, n, lines=2)
        Order.objects.filter(pk=order.pk).update(
            created_at=instant, total_gross=Decimal(AMOUNTS[n % len(AMOUNTS)])
        )
        OrderLine.objects.filter(order=order).update(
            unit_price_gross=Decimal(AMOUNTS[(n + 3) % len(AMOUNTS)]), quantity=n * 1000
        )
        customers.append(customer)
    return customers


SQL = (
    "SELECT c.id, c.email, c.first_name, c.is_active, c.order_count, c.first_order_at, "
    "c.last_order_at, o.id, o.total_gross::float8, o.created_at, l.quantity, "
    "l.unit_price_gross::float8, 2::int2, NULL::int8, 'x'::text "
    "FROM saleor_crm_plugin_customer c JOIN saleor_crm_plugin_order o ON o.customer_id = c.id "
    "JOIN saleor_crm_plugin_orderline l ON l.order_id = o.id ORDER BY l.id"
)


def test_binary_rows_equal_the_text_ones() -> None:
    _seed()
    entry = _entry()
    text = rows._select(connection, SQL, [], True)
    assert entry[3][SQL] is True  # every column qualifies: the next run reads binary
    binary = rows._select(connection, SQL, [], True)
    assert entry[2].pgresult.binary_tuples == Format.BINARY
    assert len(text) == 2 * len(INSTANTS)
    assert _typed(binary) == _typed(text)
    # And what Django's own cursor (client binding, Django's loaders) reads.
    with connection.cursor() as cursor:
        cursor.execute(SQL)
        django = cursor.fetchall()
    assert [list(r) for r in binary] == [list(r) for r in django]


@pytest.mark.parametrize(
    "column",
    [
        "o.total_gross",  # numeric: text only
        "o.total_gross::float4",  # float4's text reads back as another double
        "c.metadata",  # jsonb: Django loads it as text
        "c.id::numeric",
        "CAST('2026-01-01' AS date)",
    ],
)
def test_statements_with_other_columns_stay_in_text(column: str) -> None:
    _seed()
    sql = f"SELECT c.id, {column} FROM saleor_crm_plugin_customer c JOIN saleor_crm_plugin_order o ON o.customer_id = c.id ORDER BY o.id"  # noqa: E501
    entry = _entry()
    first = rows._select(connection, sql, [], True)
    assert entry[3][sql] is False
    again = rows._select(connection, sql, [], True)
    assert entry[2].pgresult.binary_tuples == Format.TEXT
    assert _typed(again) == _typed(first)


def test_a_loader_not_psycopgs_own_keeps_text() -> None:
    """A loader registered on the connection (by Django, a library or a test) reads the
    text: its binary counterpart, psycopg's, could answer something else."""
    from psycopg.types.numeric import IntLoader

    class Tagged(IntLoader):
        pass

    _seed()
    entry = _entry()
    entry[2].adapters.register_loader("int4", Tagged)
    sql = "SELECT c.order_count FROM saleor_crm_plugin_customer c ORDER BY c.id"
    rows._select(connection, sql, [], False)
    assert entry[3][sql] is False


def test_a_new_cursor_learns_again() -> None:
    """Formats are per cursor (its adapters, its session zone): a cursor made again starts
    from text."""
    _seed()
    entry = _entry()
    rows._select(connection, SQL, [], True)
    assert entry[3] == {SQL: True}
    entry[2].close()
    assert _entry() is not entry
    assert _entry()[3] == {}


def test_fetch_together_reads_binary_and_builds_the_same_instances() -> None:
    customers = _seed()
    reads = [
        Read(RowReader(Customer, defer=("field_versions", "metadata")), "t.id = %s", [0], "t.id"),
        Read(
            RowReader(Order, alias="o", defer=("field_versions",)),
            "o.customer_id = %s",
            [0],
            "o.id",
            frozenset({"id", "created_at", "customer_id", "number"}),
            (("total_gross", "o.total_gross::float8"),),
        ),
    ]

    def read(customer: Customer) -> Any:
        found = fetch_together([r._replace(params=[customer.pk]) for r in reads])
        return [[_typed(list(vars_of(o))) for o in objs] for objs in found]

    first = [read(c) for c in customers]  # text, then binary once learnt
    with CaptureQueriesContext(connection) as queries:
        second = [read(c) for c in customers]
    assert len(queries) == len(customers)
    # fetch_together's one statement (a WITH), learnt binary at its first run.
    assert [v for sql, v in _entry()[3].items() if sql.startswith("WITH ")] == [True]
    assert _entry()[2].pgresult.binary_tuples == Format.BINARY
    assert second == first


def vars_of(instance: Any) -> list[Any]:
    return sorted((k, v) for k, v in vars(instance).items() if k != "_state")
