"""``core.bulk.insert_rows`` writes its COPY as one block of text made column by column: the
rows stored are exactly those psycopg's row-by-row ``write_row`` stored, and whatever that
block cannot hold exactly (a NUL, a lone surrogate, a naive datetime, a float, a JSON wrapper)
still goes row by row, so psycopg converts or refuses it as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import DataError, connection, transaction

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")

AWKWARD = [
    "",
    "plain",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\.",
    "\\",
    "bell\b form\f vtab\v",
    "ünï€😀",
    '"quoted", {braced}',
    "NULL",
]


def _orders(prefix: str) -> list[Order]:
    times = [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 7, 1, 14, 30, 5, 123456, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(1999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    ]
    orders = []
    for n, name in enumerate(AWKWARD):
        orders.append(
            Order(
                saleor_order_id=f"{prefix}-{n}",
                number=name,
                channel_id="C\tD",
                currency="USD",
                status="UNFULFILLED",
                user_email=name,
                voucher_code="" if n % 2 else name,
                created_at=times[n % 3],
                paid_at=None if n % 3 else times[(n + 1) % 3],
                total_gross=None if n % 4 == 1 else Decimal(n) / 8,
                total_charged=Decimal("-0.00") if n == 2 else Decimal("1E+3"),
                field_versions={"number": name, "n": [n, None, True]},
            )
        )
    return orders


def _lines(order: Order, prefix: str) -> list[OrderLine]:
    return [
        OrderLine(
            order=order,
            saleor_line_id=f"{prefix}-{n}",
            product_name=name,
            variant_name=name[::-1],
            quantity=n,
            quantity_fulfilled=0,
            quantity_refunded=n % 2,
            unit_price_gross=Decimal("12.50"),
            unit_price_net=Decimal("0E-7") if n % 2 else Decimal("10.165"),
            total_price_gross=Decimal(n) * Decimal("12.50"),
            variant_id="" if n % 3 else name,
            sku=name[:3],
            attributes=[name, "b\\c"] if n % 2 else [],
        )
        for n, name in enumerate(AWKWARD)
    ]


def _stored(model, prefix_field: str, prefix: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    fields = [
        f.attname
        for f in model._meta.concrete_fields
        if not f.primary_key and not getattr(f, "auto_now", False)  # the time of the write
    ]
    rows = model.objects.filter(**{f"{prefix_field}__startswith": prefix}).order_by(prefix_field)
    out = []
    for row in rows.values(*fields):
        row[prefix_field] = row[prefix_field].split("-", 1)[1]
        row.pop("order_id", None)
        out.append(tuple(row.values()))
    return out


@pg_only
@pytest.mark.django_db
def test_the_text_block_stores_what_row_by_row_stored(monkeypatch):
    blocks = []
    real = bulk._copy_text
    monkeypatch.setattr(bulk, "_copy_text", lambda columns: blocks.append(1) or real(columns))
    bulk.insert_rows(Order, _orders("new"))
    new_order = Order.objects.get(saleor_order_id="new-0")
    bulk.insert_rows(OrderLine, _lines(new_order, "new"), set_ids=False)
    bulk.insert_rows(
        Customer,
        [Customer(email=f"new{n}@example.com", first_name=name) for n, name in enumerate(AWKWARD)],
    )
    assert len(blocks) == 3

    monkeypatch.setattr(bulk, "_copy_text", lambda columns: None)  # psycopg's write_row
    bulk.insert_rows(Order, _orders("old"))
    old_order = Order.objects.get(saleor_order_id="old-0")
    bulk.insert_rows(OrderLine, _lines(old_order, "old"), set_ids=False)

    assert _stored(Order, "saleor_order_id", "new") == _stored(Order, "saleor_order_id", "old")
    assert _stored(OrderLine, "saleor_line_id", "new") == _stored(
        OrderLine, "saleor_line_id", "old"
    )
    stored = Order.objects.filter(saleor_order_id__startswith="new").order_by("pk")
    assert [o.number for o in stored] == AWKWARD
    assert min(str(o.total_charged) for o in stored) == "0.000"  # -0.00 stored as zero
    names = Customer.objects.filter(email__startswith="new").order_by("pk")
    assert [c.first_name for c in names] == AWKWARD


def test_what_the_block_cannot_hold_exactly_goes_row_by_row():
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    assert bulk._copy_text([["a", None], [1, 2]]) == b"a\t1\n\\N\t2\n"
    assert bulk._copy_text([[True, False], [aware, None]]) == (
        b"t\t2026-01-01 00:00:00+00:00\nf\t\\N\n"
    )
    for columns in (
        [["a\x00b"]],
        [["\ud800"]],
        [[aware.replace(tzinfo=None)]],
        [[1.5]],
        [[Decimal("NaN")]],
        [[1, "a"]],
        [[{"k": 1}]],
        [[]],
        [],
    ):
        assert bulk._copy_text(columns) is None


@pg_only
@pytest.mark.django_db
def test_a_nul_is_refused_as_before():
    order = _orders("nul")[0]
    order.number = "a\x00b"
    with pytest.raises(DataError), transaction.atomic():
        bulk.insert_rows(Order, [order])


def test_json_columns_of_empty_values_are_their_texts_without_a_call_each(monkeypatch):
    field = OrderLine._meta.get_field("attributes")

    class Row:
        def __init__(self, attributes: object) -> None:
            self.attributes = attributes

    def prepared(values: list[object]) -> list[object]:
        (column,) = bulk.prepared_columns([Row(v) for v in values], [field], json_text=True)
        return list(column)

    calls: list[object] = []
    real = bulk.json_value_text
    monkeypatch.setattr(bulk, "json_value_text", lambda v, f: calls.append(v) or real(v, f))
    cases = [
        [[], [], []],
        [{}, {}],
        [[], {}],
        [[], ["a"]],
        [None, []],
        [{}, {"k": [1]}],
    ]
    for values in cases:
        expected = [None if v is None else real(v, field) for v in values]  # type: ignore[arg-type]
        if connection.vendor != "postgresql":  # only PostgreSQL's COPY takes JSON text
            break
        assert prepared(values) == expected, values
    if connection.vendor == "postgresql":
        assert calls == [[], {}, [], ["a"], [], {}, {"k": [1]}]  # the mixed cases only


@pg_only
@pytest.mark.django_db
def test_integer_enum_members_take_the_text_block_and_store_the_same(monkeypatch):
    from saleor_crm_plugin.customers.models import CustomerLink

    links = [CustomerLink.USER_ID, CustomerLink.EMAIL, 0, CustomerLink.NONE, 2]

    def orders(prefix: str) -> list[Order]:
        made = _orders(prefix)[: len(links)]
        for order, link in zip(made, links, strict=True):
            order.customer_link = link
        return made

    blocks: list[bytes | None] = []
    real = bulk._copy_text
    monkeypatch.setattr(bulk, "_copy_text", lambda columns: blocks.append(real(columns)))
    bulk.insert_rows(Order, orders("rows"))  # the block is dropped: psycopg's write_row
    assert blocks and blocks[0] is not None
    monkeypatch.setattr(bulk, "_copy_text", real)
    bulk.insert_rows(Order, orders("block"))
    assert _stored(Order, "saleor_order_id", "block") == _stored(Order, "saleor_order_id", "rows")
    stored = Order.objects.filter(saleor_order_id__startswith="block").order_by("pk")
    assert [o.customer_link for o in stored] == [2, 1, 0, 0, 2]

    field = Order._meta.get_field("customer_link")

    class Row:
        def __init__(self, link: object) -> None:
            self.customer_link = link

    (column,) = bulk.prepared_columns([Row(v) for v in links], [field])
    assert list(column) == [int(field.get_db_prep_save(v, connection)) for v in links]
    assert set(map(type, column)) == {int}


def test_distinct_values_are_converted_as_str_converts_them():
    values = [3, 1, 3, 2, 1, 10**20, -5, 3]
    assert bulk._distinct_texts(values) == list(map(str, values))
    unique = [Decimal("2.95"), Decimal("0.001"), Decimal("1E+3")]
    assert bulk._distinct_texts(unique) == list(map(str, unique))
    # Equal values share the first one's spelling.
    assert bulk._distinct_texts([Decimal("1.0"), Decimal("1.00"), Decimal("1.0")]) == ["1.0"] * 3


@pg_only
@pytest.mark.django_db
def test_equal_values_spelled_differently_store_what_str_of_each_stored(monkeypatch):
    """Decimals equal but spelled apart (``1.0``/``1.00``/``1E+0``, ``0``/``-0``/``0E-7``) and
    one instant at several offsets: the text block made with one ``str`` per distinct value
    stores the rows that ``str`` of every value stored."""
    prices = [
        Decimal("1.0"),
        Decimal("1.00"),
        Decimal("1"),
        Decimal("1E+0"),
        Decimal("-0"),
        Decimal("0"),
        Decimal("0E-7"),
        Decimal("12.345"),
        Decimal("12.3450"),
        Decimal("-0.000"),
    ]
    noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    instants = [
        noon,
        noon.astimezone(timezone(timedelta(hours=1))),
        noon.astimezone(ZoneInfo("America/New_York")),
        noon.astimezone(timezone(timedelta(hours=-3, minutes=-30))),
        noon + timedelta(microseconds=1),
    ]

    def orders(prefix: str) -> list[Order]:
        made = _orders(prefix)[: len(instants)]
        for n, (order, at) in enumerate(zip(made, instants, strict=True)):
            order.created_at = order.paid_at = at
            order.total_gross = order.total_charged = prices[n]
        return made

    def lines(order: Order, prefix: str) -> list[OrderLine]:
        made = _lines(order, prefix)[: len(prices)]
        for n, line in enumerate(made):
            line.unit_price_gross = prices[n]
            line.unit_price_net = prices[-1 - n]
            line.total_price_gross = prices[(n * 3) % len(prices)]
            line.quantity = n % 3
        return made

    bulk.insert_rows(Order, orders("new"))
    bulk.insert_rows(OrderLine, lines(Order.objects.get(saleor_order_id="new-0"), "new"))
    monkeypatch.setattr(bulk, "_distinct_texts", lambda values: list(map(str, values)))
    bulk.insert_rows(Order, orders("old"))
    bulk.insert_rows(OrderLine, lines(Order.objects.get(saleor_order_id="old-0"), "old"))

    assert _stored(Order, "saleor_order_id", "new") == _stored(Order, "saleor_order_id", "old")
    assert _stored(OrderLine, "saleor_line_id", "new") == _stored(
        OrderLine, "saleor_line_id", "old"
    )
    stored = Order.objects.filter(saleor_order_id__startswith="new").order_by("pk")
    assert [o.created_at for o in stored] == instants
