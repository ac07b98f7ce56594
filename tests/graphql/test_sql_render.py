"""The customer 360 rendered by PostgreSQL (``sql_render``) against the executors: the same
response bytes over generated documents and data, fallback for every shape it does not know,
and only the requester's own customer ever read."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from graphql import parse

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.models import (
    Customer,
    CustomerChannelStats,
    Order,
    OrderLine,
    OrderStatus,
)
from saleor_crm_plugin.graphql.api import schema
from saleor_crm_plugin.graphql.customers import sql_render
from tests.graphql.conftest import make_customer, user_gid

# Fields of each type the renderer maps, with the sub-selection of object fields.
MONEY = ["amount", "currency", "__typename"]
STATS = {
    "channelId": None,
    "channelSlug": None,
    "currency": None,
    "orderCount": None,
    "totalSpent": MONEY,
    "totalRefunded": MONEY,
    "firstOrderAt": None,
    "lastOrderAt": None,
    "__typename": None,
}
LINE = {
    "lineId": None,
    "productId": None,
    "variantId": None,
    "productName": None,
    "variantName": None,
    "sku": None,
    "quantity": None,
    "quantityFulfilled": None,
    "quantityRefunded": None,
    "unitPrice": MONEY,
    "unitPriceNet": MONEY,
    "totalPrice": MONEY,
    "__typename": None,
}
ORDER = {
    "id": None,
    "orderId": None,
    "number": None,
    "status": None,
    "chargeStatus": None,
    "channelId": None,
    "channelSlug": None,
    "currency": None,
    "isSale": None,
    "voucherCode": None,
    "total": MONEY,
    "totalNet": MONEY,
    "subtotal": MONEY,
    "shippingPrice": MONEY,
    "totalCharged": MONEY,
    "totalRefunded": MONEY,
    "createdAt": None,
    "paidAt": None,
    "fulfilledAt": None,
    "cancelledAt": None,
    "lines": LINE,
    "__typename": None,
}
CONNECTION = {
    "totalCount": None,
    "pageInfo": ["hasNextPage", "hasPreviousPage", "startCursor", "endCursor", "__typename"],
    "edges": {"cursor": None, "node": ORDER, "__typename": None},
    "__typename": None,
}
CUSTOMER = {
    "id": None,
    "userId": None,
    "email": None,
    "firstName": None,
    "lastName": None,
    "isGuest": None,
    "isActive": None,
    "languageCode": None,
    "countryCode": None,
    "dateJoined": None,
    "erasedAt": None,
    "orderCount": None,
    "firstOrderAt": None,
    "lastOrderAt": None,
    "channelStats": STATS,
    "orders": CONNECTION,
    "__typename": None,
}


def selection(rng: random.Random, fields: Any, fragments: dict[str, str], type_name: str) -> str:
    """A random non-empty sub-selection of ``fields``: some aliased, some repeated, some in
    inline or named fragments on the type itself."""
    names = list(fields)
    chosen = rng.sample(names, rng.randint(1, len(names)))
    if rng.random() < 0.2:
        again = rng.choice(chosen)
        if again != "orders":  # twice with other arguments would not validate
            chosen.append(again)  # the same field twice: merged
    parts = []
    for name in chosen:
        sub = None if isinstance(fields, list) else fields[name]
        text = name
        if name == "orders":
            first = rng.choice([0, 1, 2, 3, 5, 10, 13])
            args = [f"first: {first}"]
            if rng.random() < 0.2:
                args.append('channel: "eu"' if rng.random() < 0.5 else 'channel: ""')
            text += f"({', '.join(args)})"
        if sub is not None:
            text += " { " + selection(rng, sub, fragments, _type_of(name)) + " }"
        if rng.random() < 0.15 and name != "__typename":
            text = f"a{rng.randint(0, 99)}_{name}: {text}"
        parts.append(text)
    if rng.random() < 0.15:
        parts = [f"... on {type_name} {{ {' '.join(parts)} }}"]
    elif rng.random() < 0.1:
        fragment = f"F{len(fragments)}"
        fragments[fragment] = f"fragment {fragment} on {type_name} {{ {' '.join(parts)} }}"
        parts = [f"...{fragment}"]
    return " ".join(parts)


_TYPES = {
    "channelStats": "CrmCustomerChannelStats",
    "orders": "CrmOrderCountableConnection",
    "pageInfo": "PageInfo",
    "edges": "CrmOrderCountableEdge",
    "node": "CrmOrder",
    "lines": "CrmOrderLine",
}


def _type_of(name: str) -> str:
    return _TYPES.get(name, "CrmMoney")


def document(rng: random.Random) -> str:
    fragments: dict[str, str] = {}
    body = selection(rng, CUSTOMER, fragments, "CrmCustomer")
    root = f"me {{ {body} }}"
    if rng.random() < 0.1:
        root = f"__typename other: {root}"
    return "query Q { " + root + " } " + " ".join(fragments.values())


AMOUNTS = [
    Decimal("0"),
    Decimal("12.5"),
    Decimal("12"),
    Decimal("-3.25"),
    Decimal("0.001"),
    Decimal("-0.001"),
    Decimal("123456789012.345"),
    Decimal("999999999999999.999"),
    Decimal("100000000000000"),
    Decimal("1.1"),
    Decimal("0.3"),
    Decimal("33.333"),
    Decimal("293331960594306.992"),
    Decimal("8000000000000.5"),
    # ``_amount``'s numeric branch and its limit (feat/g11).
    Decimal("999999999999.999"),
    Decimal("-999999999999.990"),
    Decimal("1000000000000"),
    Decimal("-1000000000000.5"),
    Decimal("12.100"),
    Decimal("7.010"),
]


def _stamp(rng: random.Random) -> datetime:
    moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**7))
    if rng.random() < 0.5:
        moment += timedelta(microseconds=rng.randint(1, 999999))
    return moment


def seed(rng: random.Random, n: int, orders: int) -> Customer:
    customer = make_customer(
        n,
        email=rng.choice([f"c{n}@example.com", 'quo"te\\back\nslash é€😀\t\x01', ""]),
        is_active=rng.choice([None, True, False]),
        date_joined=rng.choice([None, _stamp(rng)]),
        order_count=orders,
        first_order_at=rng.choice([None, _stamp(rng)]),
        last_order_at=_stamp(rng),
    )
    for channel, currency in rng.sample(
        [("default-channel", "USD"), ("eu", "EUR"), ("eu", "PLN"), ("", "JPY")], rng.randint(0, 4)
    ):
        CustomerChannelStats.objects.create(
            customer=customer,
            channel_id=to_global_id("Channel", channel or "none"),
            channel_slug=channel,
            currency=currency,
            order_count=rng.randint(0, 9),
            total_spent=rng.choice(AMOUNTS),
            total_refunded=rng.choice(AMOUNTS),
            first_order_at=rng.choice([None, _stamp(rng)]),
        )
    shared = _stamp(rng)
    for k in range(orders):
        # Some orders at the same instant: the id breaks the tie.
        created = shared if rng.random() < 0.3 else _stamp(rng)
        order = Order.objects.create(
            saleor_order_id=to_global_id("Order", f"{n}-{k}"),
            number=str(k),
            customer=customer,
            saleor_user_id=customer.saleor_user_id or "",
            channel_id=to_global_id("Channel", 1),
            channel_slug=rng.choice(["default-channel", "eu"]),
            currency=rng.choice(["USD", "EUR"]),
            status=rng.choice(list(OrderStatus)),
            voucher_code=rng.choice(["", "SPRING"]),
            total_gross=rng.choice([None, *AMOUNTS]),
            total_net=rng.choice([None, *AMOUNTS]),
            subtotal_gross=rng.choice([None, *AMOUNTS]),
            total_charged=rng.choice(AMOUNTS),
            created_at=created,
            paid_at=rng.choice([None, _stamp(rng)]),
        )
        for i in range(rng.choice([0, 0, 1, 3])):
            OrderLine.objects.create(
                order=order,
                saleor_line_id=to_global_id("OrderLine", f"{n}-{k}-{i}"),
                product_id=rng.choice(["", to_global_id("Product", i)]),
                product_name=f"Product {i}",
                sku=rng.choice(["", "SKU"]),
                quantity=rng.randint(0, 5),
                unit_price_gross=rng.choice(AMOUNTS),
                unit_price_net=rng.choice(AMOUNTS),
                total_price_gross=rng.choice(AMOUNTS),
            )
    return customer


@pytest.fixture
def renderer_off() -> Iterator[None]:
    sql_render.SQL_RENDER["enabled"] = False
    yield
    sql_render.SQL_RENDER["enabled"] = True


def post(client: Any, query: str, token: str, variables: dict[str, Any] | None = None) -> Any:
    body = {"query": query, "variables": variables or {}}
    return client.post(
        "/graphql/",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def both(client: Any, query: str, token: str, variables: Any = None) -> tuple[bytes, bytes, int]:
    """The response bodies with the renderer on and off, and the statements the first
    request ran."""
    post(client, "{ __typename }", token)  # the token verified and remembered
    with CaptureQueriesContext(connection) as queries:
        rendered = post(client, query, token, variables)
    # Counted now: the next request's ``request_started`` empties the connection's log.
    count = len(queries)
    sql_render.SQL_RENDER["enabled"] = False
    try:
        executed = post(client, query, token, variables)
    finally:
        sql_render.SQL_RENDER["enabled"] = True
    assert rendered.status_code == executed.status_code
    return rendered.content, executed.content, count


def rendered_by_sql(query: str) -> bool:
    return sql_render.compile_operation(schema, parse(query), None) is not None


def test_same_bytes_as_the_executors_over_generated_documents(saleor, mint, client):
    rng = random.Random(3)
    customers = [seed(rng, n, orders) for n, orders in enumerate([0, 1, 3, 12], start=1)]
    tokens = [mint(c.saleor_user_id) for c in customers]
    compared = rendered_alone = 0
    for _ in range(150):
        query = document(rng)
        assert rendered_by_sql(query), query
        for token in tokens:
            rendered, executed, queries = both(client, query, token)
            assert b'"errors"' not in executed, query
            assert rendered == executed, query
            # One statement; two where an amount of 1e15 or more sent it to the executors.
            assert queries == 1 or (queries == 2 and b"000000000000.0" in executed), query
            compared += 1
            rendered_alone += queries == 1
    assert rendered_alone > compared / 2


def test_executors_read_an_order_amount_next_to_a_property(saleor, mint, client):
    """``isSale`` (a property, so every column is read) with a money field whose amount
    alone would be read as a ``float8`` column: the executors' statement named that column
    twice (an SQL error) before ``_as_floats`` left such selections alone."""
    seed(random.Random(1), 1, 2)
    query = "{ me { orders(first: 3) { edges { node { isSale totalRefunded { currency } } } } } }"
    rendered, executed, _ = both(client, query, mint(user_gid(1)))
    assert b'"errors"' not in executed
    assert rendered == executed


def test_same_bytes_for_the_bench_document_and_staff_drafts(saleor, mint, client):
    from bench.graphql import QUERY

    rng = random.Random(5)
    customer = seed(rng, 1, 12)
    # Amounts the statement writes itself (none from 999,999,999,999,999 on): one statement.
    OrderLine.objects.filter(unit_price_gross__gte=10**14).update(unit_price_gross=1)
    OrderLine.objects.filter(total_price_gross__gte=10**14).update(total_price_gross=2)
    Order.objects.filter(total_gross__gte=10**14).update(total_gross=3)
    CustomerChannelStats.objects.filter(total_spent__gte=10**14).update(total_spent=4)
    Order.objects.filter(customer=customer).update(status=OrderStatus.DRAFT)
    Order.objects.filter(customer=customer, number__in=["1", "2"]).update(
        status=OrderStatus.FULFILLED
    )
    for token in (
        mint(customer.saleor_user_id),
        mint.thirdparty(customer.saleor_user_id, ["MANAGE_ORDERS"]),
    ):
        rendered, executed, queries = both(client, QUERY, token)
        assert rendered == executed
        assert queries == 1


def test_first_as_a_variable_and_null_cursors(saleor, mint, client):
    rng = random.Random(9)
    customer = seed(rng, 1, 4)
    token = mint(customer.saleor_user_id)
    query = """query Q($first: Int, $after: String, $c: String = "eu") {
      me { orders(first: $first, after: $after, channel: $c) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { number } } } } }"""
    assert rendered_by_sql(query)
    for variables in ({"first": 2}, {"first": 0, "c": None}, {"first": 9, "c": ""}):
        rendered, executed, queries = both(client, query, token, variables)
        assert rendered == executed
        assert queries == 1


def test_a_variable_sent_as_null_takes_its_default(saleor, mint, client):
    """graphql-core 2 gives a variable sent as null its default (as if absent): the
    statement binds the default too (g10 bound null and counted every channel)."""
    customer = seed(random.Random(9), 1, 4)
    orders = Order.objects.filter(customer=customer)
    orders.update(channel_slug="default-channel", status=OrderStatus.FULFILLED)
    orders.filter(pk=orders.order_by("pk")[0].pk).update(channel_slug="eu")
    token = mint(customer.saleor_user_id)
    query = 'query Q($c: String = "eu") { me { orders(first: 5, channel: $c) { totalCount } } }'
    for variables in ({"c": None}, {}):
        rendered, executed, queries = both(client, query, token, variables)
        assert rendered == executed == b'{"data":{"me":{"orders":{"totalCount":1}}}}'
        assert queries == 1


@pytest.mark.parametrize(
    "variables",
    [
        {"first": 2, "after": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgMV0="},
        {"first": -1},
        {"first": 10_000},
        {},
        {"first": "2"},
    ],
)
def test_variables_the_statement_cannot_bind_go_to_the_executors(saleor, mint, client, variables):
    customer = seed(random.Random(1), 1, 3)
    token = mint(customer.saleor_user_id)
    query = """query Q($first: Int, $after: String) {
      me { orders(first: $first, after: $after) { totalCount edges { node { number } } } } }"""
    rendered, executed, _ = both(client, query, token, variables)
    assert rendered == executed


def test_amounts_beyond_the_positional_range_fall_back(saleor, mint, client):
    customer = make_customer(1)
    CustomerChannelStats.objects.create(
        customer=customer,
        channel_id="x",
        currency="USD",
        total_spent=Decimal("12345678901234567.125"),
    )
    query = "{ me { channelStats { totalSpent { amount } } } }"
    rendered, executed, queries = both(client, query, mint(user_gid(1)))
    assert rendered == executed
    assert b"e+16" in executed
    assert queries == 2  # the statement, then the executors' own


@pytest.mark.parametrize(
    "query",
    [
        "{ me { id user { id } } }",
        "{ me { orders(first: 2) { edges { node { customer { id } } } } } }",
        "{ me { orders(first: 2) { edges { node { lines { product { id } } } } } } }",
        '{ me { orders(first: 2, after: "x") { totalCount } } }',
        "{ me { orders(last: 2) { totalCount } } }",
        "{ me { id @include(if: true) } }",
        "query Q($s: Boolean!) { me { id @skip(if: $s) } }",
        "{ me { ... on Node { id } } }",
        "{ __schema { queryType { name } } }",
        '{ me { id } crmProduct(id: "UHJvZHVjdDox") { productId } }',
        "{ __typename }",
        "mutation { __typename }",
    ],
)
def test_shapes_it_does_not_know_are_left_to_the_executors(query):
    assert not rendered_by_sql(query)


def test_fallback_answers_as_before(saleor, mint, client):
    seed(random.Random(2), 1, 3)
    query = "{ me { id email orders(last: 2) { totalCount edges { node { number } } } } }"
    rendered, executed, _ = both(client, query, mint(user_gid(1)))
    assert rendered == executed


def test_a_customer_reads_only_their_own_customer(saleor, mint, client):
    rng = random.Random(4)
    seed(rng, 1, 2)
    other = seed(rng, 2, 3)
    query = "{ me { id email orders(first: 5) { totalCount } } }"
    response = post(client, query, mint(user_gid(1)))
    me = response.json()["data"]["me"]
    assert me["id"] != to_global_id("CrmCustomer", other.pk)
    assert me["id"] == to_global_id(
        "CrmCustomer", Customer.objects.get(saleor_user_id=user_gid(1)).pk
    )
    # Only the requester's user id is ever bound.
    compiled = sql_render.compile_operation(schema, parse(query), None)
    assert [name for name, _ in compiled.params] == ["user", "size1", "drafts"]


def test_anonymous_and_unknown_callers(saleor, mint, client):
    query = "{ me { id } }"
    rendered, executed, _ = both(client, query, mint(user_gid(77)))
    assert rendered == executed == b'{"data":{"me":null}}'
    anonymous = client.post(
        "/graphql/", data=json.dumps({"query": query}), content_type="application/json"
    )
    assert anonymous.json() == {"data": {"me": None}}


def test_renderer_off_fixture_switches_back(renderer_off):
    assert not sql_render.SQL_RENDER["enabled"]


def _existing_documents() -> dict[str, tuple[str, dict[str, Any] | None]]:
    """The customer 360 documents ``test_customer_360.py`` sends its loaders."""
    from tests.graphql import test_customer_360 as existing

    found = {f"orders: {name}": value for name, value in existing.ME_ORDERS_DOCUMENTS.items()}
    for group in ("STATS_DOCUMENTS", "PAGE_LINES_DOCUMENTS"):
        for name, query in getattr(existing, group).items():
            found[f"{group}: {name}"] = (query, None)
    return found


@pytest.mark.parametrize("name", _existing_documents())
def test_same_bytes_for_the_loaders_documents(saleor, mint, client, name):
    """Every document the loaders' tests send (rendered or left to the executors, errors
    included) answers the same bytes either way, for customers with 0, 1 and many orders
    and for staff who see drafts."""
    query, variables = _existing_documents()[name]
    rng = random.Random(11)
    customers = [seed(rng, n, orders) for n, orders in enumerate([0, 1, 12], start=1)]
    Order.objects.filter(number="3").update(status=OrderStatus.DRAFT)
    cursor = to_global_id("x", "y")
    query = query.replace("%(cursor)s", cursor)
    for customer in customers:
        for token in (
            mint(customer.saleor_user_id),
            mint.thirdparty(customer.saleor_user_id, ["MANAGE_ORDERS"]),
        ):
            rendered, executed, _ = both(client, query, token, variables)
            assert rendered == executed


def test_batches_mix_rendered_and_executed_answers(saleor, mint, client):
    from bench.graphql import QUERY

    seed(random.Random(6), 1, 4)
    token = mint(user_gid(1))
    batch = [
        {"query": QUERY},
        {"query": "{ me { orders(last: 1) { totalCount } } }"},
        {"query": "{ me { email } }"},
    ]

    def send() -> bytes:
        return client.post(
            "/graphql/",
            data=json.dumps(batch),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        ).content

    rendered = send()
    sql_render.SQL_RENDER["enabled"] = False
    try:
        assert rendered == send()
    finally:
        sql_render.SQL_RENDER["enabled"] = True


def test_other_databases_are_left_to_the_executors(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert not rendered_by_sql("{ me { id } }")


def _values_of(expression: str, cast: str, values: list[Any]) -> list[str | None]:
    """``expression`` (SQL over ``v``) for each of ``values`` bound as ``cast``."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {expression} FROM unnest(%s::{cast}[]) WITH ORDINALITY AS u(v, n) ORDER BY n",
            [values],
        )
        return [row[0] for row in cursor.fetchall()]


def test_amounts_are_written_as_orjson_writes_their_floats(db):
    """``_amount`` against ``orjson.dumps(float(Decimal))`` (the executors' answer of a
    ``float8`` read) over 20,000 ``numeric(20, 3)`` values of every width; only values from
    999,999,999,999,999 on are handed to the executors."""
    import orjson

    from tests.graphql.test_float_amounts import _awkward

    values = [*_awkward(random.Random(8), 20_000), "999999999999998.999", "0.000", "-0.000"]
    written = _values_of(sql_render._amount("v::numeric(20, 3)"), "text", values)
    exotic = 0
    for text, answer in zip(values, written, strict=True):
        # PostgreSQL's numeric has no negative zero: "-0.000" is stored (and read) as 0.
        amount = Decimal(text).quantize(Decimal("0.001")) + 0
        if answer == sql_render._EXOTIC:
            assert abs(amount) >= Decimal("999999999999999"), text
            exotic += 1
        else:
            assert answer == orjson.dumps(float(amount)).decode(), text
    assert exotic < len(values) / 2


def test_datetimes_are_written_as_isoformat_writes_them(db):
    """``_datetime`` against ``executor._isoformat`` (graphene's DateTime) over years 1 to
    9999, with and without microseconds, through the UTC session Django sets."""
    from saleor_crm_plugin.graphql.core.executor import _isoformat

    rng = random.Random(4)
    moments = [
        datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28), tzinfo=UTC)
        + timedelta(
            seconds=rng.randint(0, 86399),
            microseconds=rng.choice([0, 0, 1, 10, 500000, rng.randint(1, 999999)]),
        )
        for _ in range(3000)
    ]
    written = _values_of(sql_render._datetime("v"), "timestamptz", moments)
    for moment, answer in zip(moments, written, strict=True):
        assert answer == f'"{_isoformat(moment)}"', moment
    # The NOT NULL columns' form (no ``coalesce``) writes the same text; NULL is null.
    assert _values_of(sql_render._datetime_not_null("v"), "timestamptz", moments) == written
    assert _values_of(sql_render._datetime("v"), "timestamptz", [None]) == ["null"]


def test_strings_are_escaped_as_orjson_escapes_them(db):
    import orjson

    rng = random.Random(5)
    alphabet = [chr(c) for c in range(1, 0x80)] + ["é", "€", "😀", "\u2028", "\u2029", "\ufeff"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    written = _values_of(sql_render._string("v"), "text", texts)
    for text, answer in zip(texts, written, strict=True):
        assert answer == orjson.dumps(text).decode(), repr(text)
    assert _values_of(sql_render._string_not_null("v"), "text", texts) == written
    assert _values_of(sql_render._string("v"), "text", [None]) == ["null"]


def test_amounts_of_every_width_scale_and_trailing_zero(db):
    """``_amount`` against orjson where its branches meet: every width of integral part up
    to 10**14, fractions with trailing zeros (``12.100``), integral amounts (``min_scale``
    0, written through ``int8``), both signs, around ``_DIGITS_LIMIT`` (10**12)."""
    import orjson

    rng = random.Random(11)
    values = ["0.000", "0.001", "-0.001", "0.100", "0.010"]
    for digits in range(1, 15):
        for whole in (10 ** (digits - 1), 10**digits - 1, rng.randrange(10**digits)):
            for fraction in ("000", "001", "010", "100", "500", "990", "999", "250"):
                for sign in ("", "-"):
                    values.append(f"{sign}{whole}.{fraction}")
    values += ["999999999999.999", "1000000000000.000", "-1000000000000.001"]
    written = _values_of(sql_render._amount("v::numeric(20, 3)"), "text", values)
    for text, answer in zip(values, written, strict=True):
        amount = Decimal(text) + 0
        assert answer == orjson.dumps(float(amount)).decode(), text


def test_statuses_are_quoted_as_orjson_quotes_them(db):
    """``_status`` quotes a listed status itself (no ``to_json``): right only while every
    status is plain ASCII without quotes or backslashes; anything else is ``_EXOTIC``."""
    import orjson

    statuses = [status.value for status in OrderStatus]
    written = _values_of(sql_render._status("v"), "text", [*statuses, "other", None])
    assert written == [
        *(orjson.dumps(status).decode() for status in statuses),
        sql_render._EXOTIC,
        sql_render._EXOTIC,
    ]


@pytest.mark.parametrize(
    ("leaves", "model"),
    [
        (sql_render._CUSTOMER_LEAVES, Customer),
        (sql_render._STATS_LEAVES, CustomerChannelStats),
        (sql_render._ORDER_LEAVES, Order),
        (sql_render._LINE_LEAVES, OrderLine),
    ],
)
def test_only_not_null_columns_skip_the_coalesce(leaves, model):
    """``_c`` drops the ``coalesce`` to null only for a column its model declares NOT NULL
    (a nullable one would turn the whole object's text NULL)."""
    columns = {field.column: field for field in model._meta.concrete_fields}
    for name, leaf in leaves.items():
        sql = leaf("x")
        column = next((c for c in columns if f'x."{c}"' in sql), None)
        if column is None:  # ``id`` and ``isGuest``: expressions of their own
            continue
        if columns[column].null:
            assert "coalesce" in sql or "CASE" in sql, name


def _every_field(fields: Any) -> str:
    """The selection of every field in ``fields`` (the maps at the top of this file)."""
    if isinstance(fields, list):
        return " ".join(fields)
    parts = []
    for name, sub in fields.items():
        text = "orders(first: 10)" if name == "orders" else name
        parts.append(text if sub is None else f"{text} {{ {_every_field(sub)} }}")
    return " ".join(parts)


FULL_DOCUMENT = f"query Q {{ __typename me {{ {_every_field(CUSTOMER)} }} }}"


def test_no_literal_is_concatenated_with_another():
    """``_chain`` writes neighbouring literals as one (``'{"node":{"orderId":'``): no
    ``textcat`` joins two constants, whatever the selection."""
    sql = sql_render.compile_operation(schema, parse(FULL_DOCUMENT), None).sql
    without_strings = re.sub(r"'(?:[^']|'')*'", "L", sql)
    assert "L || L" not in without_strings
    assert sql_render._chain([sql_render._Lit("{"), sql_render._Lit("}")]) == "'{}'"
    assert sql_render._chain([]) == "''"
    assert sql_render._chain([sql_render._Lit("it's"), "x", sql_render._Lit("")]) == (
        "'it''s' || x || ''"
    )


def test_only_nullable_amounts_are_tested_for_null():
    """A money of a NOT NULL amount column has no ``IS NULL`` test (its object is written
    as it is); a nullable one (an order's totals) answers null for NULL."""
    for model, fields, alias in (
        (CustomerChannelStats, sql_render._STATS_OBJECTS, "s"),
        (Order, {k: v for k, v in sql_render._ORDER_OBJECTS.items() if k != "lines"}, "p"),
    ):
        for name, build in fields.items():
            document = parse(f"query Q {{ me {{ x: {name} {{ amount currency }} }} }}")
            scope = sql_render._Scope(document, document.definitions[0])
            field = document.definitions[0].selection_set.selections[0].selection_set
            nodes = [field.selections[0]]
            sql = sql_render._chain(build(scope, nodes, alias))
            column = next(
                c
                for c in (f.column for f in model._meta.concrete_fields)
                if f'{alias}."{c}"' in sql
            )
            nullable = next(f for f in model._meta.concrete_fields if f.column == column).null
            assert ("IS NULL" in sql) == nullable, (name, sql)


def test_the_page_reads_only_the_order_columns_it_writes():
    """The page's subquery names the order columns the connection reads (``_columns_of``)
    instead of ``o.*``; the generated-document tests run every selection of them."""
    sql = sql_render.compile_operation(schema, parse(FULL_DOCUMENT), None).sql
    assert "o.*" not in sql
    page = sql[sql.index("FROM (SELECT o.") : sql.index("row_number()")]
    named = set(re.findall(r'o\."(\w+)"', page))
    assert {"id", "created_at", "currency", "total_gross", "status"} <= named
    assert "saleor_user_id" not in named and "field_versions" not in named
    small = sql_render.compile_operation(
        schema, parse("{ me { orders(first: 2) { totalCount } } }"), None
    ).sql
    assert "FROM (SELECT row_number()" in small
    assert sql_render._columns_of('p.id || p."number" || p._n || p.nope', "p", Order) == [
        "id",
        "number",
    ]


def test_full_selection_same_bytes_on_every_page_size(saleor, mint, client):
    """Every mapped field at once, ``first`` below, at and above the customer's order
    count (the one window's row numbers and whole-frame count: ``totalCount``,
    ``hasNextPage``, the cursors), compared byte for byte with the executors'."""
    rng = random.Random(12)
    customer = seed(rng, 1, 7)
    token = mint(customer.saleor_user_id)
    for first in (0, 1, 6, 7, 8, 13):
        query = FULL_DOCUMENT.replace("orders(first: 10)", f"orders(first: {first})")
        rendered, executed, queries = both(client, query, token)
        assert b'"errors"' not in executed
        assert rendered == executed, first
        assert queries in (1, 2), first
