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


@pytest.mark.parametrize(
    "child_only", [None, frozenset({"customer_id", "currency", "total_spent"})]
)
def test_fetch_with_gives_what_fetch_and_the_childs_fetch_give(child_only: Any) -> None:
    """One joined statement, the same instances (values, types, deferred columns) as the
    parent's ``fetch`` then the child's, each parent with its own children in order; a
    parent without children gets an empty list, rows the WHERE leaves out come not."""
    from saleor_crm_plugin.customers.models import CustomerChannelStats
    from tests.graphql.conftest import make_stats

    first, bare, other, left_out = (make_customer(n) for n in range(1, 5))
    make_stats(first, channel="zz", currency="EUR", first_order_at=first.first_order_at)
    make_stats(first, channel="aa")
    make_stats(other)
    make_stats(left_out)
    keys = [other.pk, bare.pk, first.pk]
    where = f"t.id IN ({placeholders(keys)})"
    only = frozenset({"email", "saleor_user_id"})
    with CaptureQueriesContext(connection) as queries:
        joined = RowReader(Customer).fetch_with(
            RowReader(CustomerChannelStats, alias="s"),
            "customer",
            where,
            keys,
            order_by="s.channel_slug, s.id",
            only=only,
            child_only=child_only,
        )
    assert len(queries) == 1 and "LEFT JOIN" in queries[0]["sql"]
    parents = RowReader(Customer).fetch(where, keys, order_by="t.id", only=only)
    assert [values(c) for c, _ in joined] == [values(c) for c in parents]
    assert [c.get_deferred_fields() for c, _ in joined] == [
        c.get_deferred_fields() for c in parents
    ]
    assert [c.pk for c, _ in joined] == [first.pk, bare.pk, other.pk]
    for customer, stats in joined:
        expected = RowReader(CustomerChannelStats).fetch(
            "t.customer_id = %s", [customer.pk], order_by="t.channel_slug, t.id", only=child_only
        )
        assert [s.get_deferred_fields() for s in stats] == [
            e.get_deferred_fields() for e in expected
        ]
        assert [s.__dict__.keys() for s in stats] == [e.__dict__.keys() for e in expected]
        assert [
            {k: getattr(s, k) for k in e.__dict__ if k != "_state"}
            for s, e in zip(stats, expected, strict=True)
        ] == [{k: v for k, v in e.__dict__.items() if k != "_state"} for e in expected]
    assert [[s.channel_slug for s in stats] for _, stats in joined] == [
        ["aa", "zz"],
        [],
        ["default-channel"],
    ]


@pytest.mark.parametrize(
    ("only", "child_only"),
    [(None, None), (frozenset({"number", "total_gross"}), frozenset({"order_id", "sku"}))],
)
@pytest.mark.parametrize("direction", ["DESC", "ASC"])
def test_fetch_page_with_gives_what_fetch_and_the_childs_fetch_give(
    only: Any, child_only: Any, direction: str
) -> None:
    """One statement, the same instances (values, types, deferred columns, extra columns)
    as the page's ``fetch`` then the child's ``fetch`` of the page's first ``children_of``
    rows; the row beyond them comes without its children, rows the WHERE leaves out come
    not, a parent without children has none."""
    customer, other = make_customer(1), make_customer(2)
    for n, lines in [(1, 2), (2, 0), (3, 3), (4, 1), (5, 2)]:
        make_order(customer, n, lines=lines)
    make_order(other, 6, lines=2)
    make_order(customer, 7, lines=2, status="draft")
    where, params = "t.customer_id = %s AND t.status <> %s", [customer.pk, "draft"]
    order_by = f"t.created_at {direction}, t.id {direction}"
    extra = [("_total", "COUNT(*) OVER ()")]
    with CaptureQueriesContext(connection) as queries:
        page, lines = RowReader(Order).fetch_page_with(
            RowReader(OrderLine, alias="l", defer=("attributes",)),
            "order",
            where,
            params,
            order_by=order_by,
            limit=4,
            children_of=3,
            child_order_by="l.id",
            extra=extra,
            only=only,
            child_only=child_only,
        )
    assert len(queries) == 1
    expected = RowReader(Order).fetch(
        where, params, order_by=order_by, limit=4, extra=extra, only=only
    )
    assert [o.number for o in page] == (
        ["5", "4", "3", "2"] if direction == "DESC" else ["1", "2", "3", "4"]
    )
    assert [values(o) for o in page] == [values(o) for o in expected]
    assert [o._total for o in page] == [o._total for o in expected] == [5] * 4
    assert [o.get_deferred_fields() for o in page] == [o.get_deferred_fields() for o in expected]
    ids = [o.pk for o in expected[:3]]
    expected_lines = RowReader(OrderLine, defer=("attributes",)).fetch(
        f"t.order_id IN ({placeholders(ids)})", ids, order_by="t.id", only=child_only
    )
    assert len(lines) == len(expected_lines) == (6 if direction == "DESC" else 5)
    assert [line.__dict__.keys() for line in lines] == [e.__dict__.keys() for e in expected_lines]
    assert [{k: v for k, v in line.__dict__.items() if k != "_state"} for line in lines] == [
        {k: v for k, v in e.__dict__.items() if k != "_state"} for e in expected_lines
    ]
    assert all(not line._state.adding and line._state.db == "default" for line in lines)


def test_fetch_together_puts_rows_in_order_whatever_order_they_come_in(monkeypatch: Any) -> None:
    """The union has no ORDER BY (``fetch_together`` sorts its rows): rows coming back in
    any order give the same instances, each read's in its own order."""
    from saleor_crm_plugin.core import rows

    customer = make_customer(1)
    for n in range(1, 5):
        make_order(customer, n, lines=2)
    reads = [
        rows.Read(RowReader(Customer), "t.id = %s", [customer.pk], "t.id", name="c"),
        rows.Read(
            RowReader(Order),
            "t.customer_id IN (SELECT c.id FROM c)",
            (),
            "t.created_at DESC, t.id DESC",
            limit=3,
            name="page",
        ),
        rows.Read(
            RowReader(OrderLine, alias="l"),
            "l.order_id IN (SELECT page.id FROM page)",
            (),
            "l.id DESC",
        ),
    ]
    expected = rows.fetch_together(reads)
    select = rows._select
    monkeypatch.setattr(rows, "_select", lambda *args: select(*args)[::-1])
    reversed_ = rows.fetch_together(reads)
    assert [[values(r) for r in read] for read in reversed_] == [
        [values(r) for r in read] for read in expected
    ]
    assert [o.number for o in expected[1]] == ["4", "3", "2"]
    line_ids = [line.pk for line in expected[2]]
    assert line_ids == sorted(line_ids, reverse=True) and len(line_ids) == 6


TIMESTAMPS_SQL = """SELECT ts FROM (VALUES ('0001-01-01 00:00:00+00'::timestamptz),
    ('9999-12-31 23:59:59.999999+00'), ('2026-03-29 01:30:00.5+02'),
    ('1969-12-31 23:59:59.000001-05:30'), ('2000-02-29 12:00:00.123-11'),
    ('1900-01-01 00:00:00+01:23:45'), (NULL)) v(ts)
    UNION ALL SELECT g FROM generate_series(
        '1950-01-01'::timestamptz, '2060-01-01', '37 days 3 hours 17 minutes 13.123457 seconds'
    ) g"""


def test_c_timestamp_loader_reads_what_djangos_reads() -> None:
    """Same values, same tzinfo object, whatever the offset or precision; and only the
    cursor it was asked for: the next Django cursor loads with Django's loader again."""
    from saleor_crm_plugin.core.rows import use_c_timestamptz_loader

    with connection.cursor() as cursor:
        cursor.execute(TIMESTAMPS_SQL)
        expected = [row[0] for row in cursor.fetchall()]
        django_loader = cursor.cursor.adapters.get_loader(1184, 0)
    with connection.cursor() as cursor:
        assert use_c_timestamptz_loader(cursor.cursor)
        cursor.execute(TIMESTAMPS_SQL)
        loaded = [row[0] for row in cursor.fetchall()]
    assert len(loaded) == len(expected) > 1000
    assert loaded == expected
    assert [v.isoformat() if v else None for v in loaded] == [
        v.isoformat() if v else None for v in expected
    ]
    assert all(a is None or a.tzinfo is b.tzinfo for a, b in zip(loaded, expected, strict=True))
    with connection.cursor() as cursor:
        assert cursor.cursor.adapters.get_loader(1184, 0) is django_loader


def test_c_timestamp_loader_only_where_django_would_agree(monkeypatch: Any) -> None:
    """Django's zone not the session's (another TIME_ZONE for the database): Django's
    loader stays, as on SQLite or without psycopg's C module."""
    from zoneinfo import ZoneInfo

    from django.db.backends.postgresql.psycopg_any import register_tzloader

    from saleor_crm_plugin.core import rows

    with connection.cursor() as cursor:
        register_tzloader(ZoneInfo("Europe/Paris"), cursor.cursor)
        assert not rows.use_c_timestamptz_loader(cursor.cursor)
    monkeypatch.setattr(rows, "_C_TZ_LOADER", None)
    with connection.cursor() as cursor:
        assert not rows.use_c_timestamptz_loader(cursor.cursor)
    assert not rows.use_c_timestamptz_loader(object())


def _prepared_reads() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%FROM "saleor_crm_plugin_customer" t WHERE t.id = $1%'],
        )
        return cursor.fetchone()[0]


def test_reads_are_bound_on_the_server_and_prepared_when_the_connection_prepares(
    monkeypatch: Any,
) -> None:
    """``prepare_threshold`` set (the App's default): ``$1`` parameters, so the statement is
    the same text for every key and psycopg prepares it once on the connection."""
    import psycopg

    from saleor_crm_plugin.core import rows

    customers = [make_customer(n) for n in range(1, 4)]
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", 1)
    cursor = rows._server_cursor(connection)
    assert type(cursor) is psycopg.Cursor  # binds on the server
    reader = RowReader(Customer)
    with CaptureQueriesContext(connection) as queries:
        read = [reader.fetch("t.id = %s", [c.pk])[0] for c in customers]
    assert len(queries) == 3  # still logged and counted like Django's own queries
    assert [values(r) for r in read] == [values(c) for c in customers]
    assert _prepared_reads() == 1
    # One cursor per connection, made again once closed (or for a new connection).
    assert rows._server_cursor(connection) is cursor
    cursor.close()
    assert rows._server_cursor(connection) is not cursor
    assert values(reader.fetch("t.id = %s", [customers[0].pk])[0]) == values(customers[0])


def test_reads_keep_djangos_cursor_when_the_connection_does_not_prepare(
    monkeypatch: Any,
) -> None:
    """Preparing off (behind a transaction-pooling PgBouncer): server binding alone would
    cost PostgreSQL a describe step for nothing, so Django's client-binding cursor stays."""
    import psycopg

    from saleor_crm_plugin.core import rows

    customer = make_customer(1)
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    assert rows._server_cursor(connection) is None
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, psycopg.ClientCursor)
    for _ in range(3):
        assert values(RowReader(Customer).fetch("t.id = %s", [customer.pk])[0]) == values(customer)
    assert _prepared_reads() == 0
