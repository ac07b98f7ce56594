"""Set-wise writes for JSON columns (``core.bulk``, feat/w6).

``update_rows`` now sends JSON lists and dicts as ``jsonb[]`` elements, so an order's
``field_versions`` and a customer's ``metadata`` no longer send the whole set row by row; the
write-back queue's requeue is one ``UPDATE ... FROM unnest``. Each test writes the same rows
both ways (the old path kept here as the oracle) and compares what PostgreSQL stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.writeback import services as writeback
from saleor_crm_plugin.writeback.models import MetadataWriteback

pg_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the set-wise paths are PostgreSQL's"
)

AWKWARD_JSON = [
    {},
    {"core": "2026-01-01T00:00:00+00:00|2|abc"},
    {"quote": 'say "hi"', "slash": "a\\b", "braces": "{x,y}", "null": "NULL", "é": "ü ☃"},
    {"nested": {"list": [1, 2.5, None, True, "x"], "empty": []}, "n": None},
    [],
    ["a", {"b": 1}],
]


def _order(n: int) -> Order:
    return Order(
        saleor_order_id=f"O-{n}",
        channel_id="C",
        currency="USD",
        status="UNFULFILLED",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _per_row_update(model, rows, names) -> None:
    """The old path: one ``UPDATE ... WHERE pk = %s`` per row, values as Django adapts them."""
    meta = model._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in names]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET "
        + ", ".join(f"{quote(c.column)} = %s" for c in columns)
        + f" WHERE {quote(meta.pk.column)} = %s"
    )
    values = [
        [*(c.get_db_prep_save(getattr(row, c.attname), connection) for c in columns), row.pk]
        for row in rows
    ]
    bulk.execute_many(sql, values)


@pg_only
@pytest.mark.django_db
def test_json_columns_update_in_one_statement_as_row_by_row_stored_them():
    names = ["field_versions", "status", "number"]
    fast = [_order(n) for n in range(len(AWKWARD_JSON))]
    slow = [_order(n + 100) for n in range(len(AWKWARD_JSON))]
    bulk.insert_rows(Order, fast + slow)
    for rows in (fast, slow):
        for n, (order, value) in enumerate(zip(rows, AWKWARD_JSON, strict=True)):
            order.field_versions = value
            order.status = "FULFILLED" if n % 2 else "CANCELED"
            order.number = f"#{n}"

    with CaptureQueriesContext(connection) as queries:
        bulk.update_rows(Order, fast, names)
    _per_row_update(Order, slow, names)

    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1 and "unnest" in updates[0] and "jsonb[]" in updates[0]

    def stored(rows):
        found = Order.objects.filter(pk__in=[o.pk for o in rows]).order_by("pk")
        return list(found.values_list(*names))

    assert stored(fast) == stored(slow)
    assert [row[0] for row in stored(fast)] == AWKWARD_JSON
    # jsonb's own text of each value, not only its decoding, is the same both ways
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT field_versions::text FROM saleor_crm_plugin_order "
            "WHERE id = ANY(%s) ORDER BY id",
            [[o.pk for o in fast + slow]],
        )
        texts = [row[0] for row in cursor.fetchall()]
    assert texts[: len(fast)] == texts[len(fast) :]


@pg_only
@pytest.mark.django_db
def test_customer_profiles_with_metadata_update_in_one_statement():
    customers = [Customer(email=f"c{n}@example.com") for n in range(4)]
    bulk.insert_rows(Customer, customers)
    for n, customer in enumerate(customers):
        customer.metadata = AWKWARD_JSON[n]
        customer.field_versions = {"email": f"1|{n}"}
    with CaptureQueriesContext(connection) as queries:
        bulk.update_rows(Customer, customers, ["metadata", "field_versions"])
    assert len(queries) == 1 and "unnest" in queries[0]["sql"]
    stored = Customer.objects.filter(pk__in=[c.pk for c in customers]).order_by("pk")
    assert list(stored.values_list("metadata", "field_versions")) == [
        (AWKWARD_JSON[n], {"email": f"1|{n}"}) for n in range(4)
    ]


def _old_requeue(changed: list[tuple[dict[str, str], int]]) -> None:
    """The requeue before it was set-wise: one statement per row."""
    meta = MetadataWriteback._meta
    quote = connection.ops.quote_name
    items = meta.get_field("items")
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote(items.column)} = %s, "
        '"version" = "version" + 1, "pending" = %s, "attempts" = 0, "last_error" = \'\' '
        f"WHERE {quote(meta.pk.column)} = %s"
    )
    prepare = items.get_db_prep_save
    bulk.execute_many(sql, [[prepare(merged, connection), True, pk] for merged, pk in changed])


@pytest.mark.django_db
def test_requeue_writes_what_the_statement_per_row_wrote():
    def rows(prefix: str) -> list[MetadataWriteback]:
        made = []
        for n in range(4):
            made.append(
                MetadataWriteback.objects.create(
                    object_id=f"{prefix}-{n}",
                    items={"old": "x"},
                    version=n + 1,
                    pending=bool(n % 2),
                    attempts=n,
                    last_error="boom" if n else "",
                    sent_at=datetime(2026, 1, 1, tzinfo=UTC) if n % 2 else None,
                )
            )
        return made

    new, old = rows("new"), rows("old")
    merged = [{"crm.points": str(n), "quote": 'a "b" \\ {c}', "é": "ü"} for n in range(4)]
    with CaptureQueriesContext(connection) as queries:
        writeback._requeue([(items, row.pk) for items, row in zip(merged, new, strict=True)])
    _old_requeue([(items, row.pk) for items, row in zip(merged, old, strict=True)])
    if connection.vendor == "postgresql":
        assert len(queries) == 1 and "unnest" in queries[0]["sql"]

    fields = ["items", "version", "pending", "attempts", "last_error", "sent_at"]

    def stored(prefix: str):
        found = MetadataWriteback.objects.filter(object_id__startswith=f"{prefix}-")
        return list(found.order_by("object_id").values_list(*fields))

    assert stored("new") == stored("old")
    assert stored("new")[0][:4] == (merged[0], 2, True, 0)


@pg_only
@pytest.mark.django_db
def test_copied_rows_take_consecutive_ids_from_the_tables_sequence():
    """``insert_rows`` reads the ids from the sequence ``pg_get_serial_sequence`` names, now
    looked up once per statement: the same ids, in order, as one ``nextval`` per row gave."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('saleor_crm_plugin_order', 'id'))")
        (last,) = cursor.fetchone()
    orders = [_order(n) for n in range(5)]
    with CaptureQueriesContext(connection) as queries:
        bulk.insert_rows(Order, orders)
    assert [o.pk for o in orders] == list(range(last + 1, last + 6))
    assert "(SELECT pg_get_serial_sequence(" in queries[0]["sql"]
    stored = Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("pk")
    assert list(stored.values_list("saleor_order_id", flat=True)) == [f"O-{n}" for n in range(5)]
