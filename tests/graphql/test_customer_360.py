"""Customer 360: ``me`` and ``customer(id)``, their orders with lines, stats per channel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.models import OrderStatus
from tests.graphql.conftest import (
    error_codes,
    make_customer,
    make_order,
    make_stats,
    staff_answer,
    user_gid,
)

CUSTOMER_360 = """
query Customer360($first: Int, $after: String) {
  me {
    id userId email firstName lastName isGuest orderCount firstOrderAt lastOrderAt
    channelStats { channelSlug currency orderCount totalSpent { amount currency } }
    orders(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { node {
        orderId number status channelSlug total { amount currency }
        lines { productId productName quantity unitPrice { amount } totalPrice { amount } }
      } }
    }
  }
}
"""


@pytest.fixture
def shopper(db):
    customer = make_customer(1, order_count=3, first_order_at=datetime(2026, 1, 2, tzinfo=UTC))
    for n in range(1, 4):
        make_order(customer, n)
    make_stats(customer, order_count=3)
    make_stats(customer, channel="eu", channel_id=to_global_id("Channel", 2), currency="EUR")
    return customer


def test_me_returns_the_signed_in_customer(saleor, mint, gql, shopper):
    status, body = gql(CUSTOMER_360, {"first": 2}, token=mint(user_gid(1)))
    assert status == 200, body
    me = body["data"]["me"]
    assert me["id"] == to_global_id("CrmCustomer", shopper.pk)
    assert (me["userId"], me["email"], me["isGuest"]) == (
        user_gid(1),
        "customer1@example.com",
        False,
    )
    assert me["orderCount"] == 3
    assert [(s["channelSlug"], s["currency"]) for s in me["channelStats"]] == [
        ("default-channel", "USD"),
        ("eu", "EUR"),
    ]
    orders = me["orders"]
    assert orders["totalCount"] == 3
    assert [e["node"]["number"] for e in orders["edges"]] == ["3", "2"]  # newest first
    assert orders["pageInfo"]["hasNextPage"] is True
    first_order = orders["edges"][0]["node"]
    assert first_order["status"] == "FULFILLED"
    assert first_order["total"] == {"amount": 60.0, "currency": "USD"}
    assert [line["quantity"] for line in first_order["lines"]] == [1, 2]
    assert first_order["lines"][1]["unitPrice"] == {"amount": 15.0}


def test_orders_next_page_follows_the_cursor(saleor, mint, gql, shopper):
    token = mint(user_gid(1))
    _, body = gql(CUSTOMER_360, {"first": 2}, token=token)
    cursor = body["data"]["me"]["orders"]["pageInfo"]["endCursor"]
    _, body = gql(CUSTOMER_360, {"first": 2, "after": cursor}, token=token)
    orders = body["data"]["me"]["orders"]
    assert [e["node"]["number"] for e in orders["edges"]] == ["1"]
    assert orders["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": orders["pageInfo"]["endCursor"],
    }


def test_last_and_before_page_backwards(saleor, mint, gql, shopper):
    query = """query($last: Int, $before: String) { me { orders(last: $last, before: $before) {
      pageInfo { hasPreviousPage startCursor } edges { node { number } } } } }"""
    token = mint(user_gid(1))
    _, body = gql(query, {"last": 2}, token=token)
    orders = body["data"]["me"]["orders"]
    assert [e["node"]["number"] for e in orders["edges"]] == ["2", "1"]
    assert orders["pageInfo"]["hasPreviousPage"] is True
    _, body = gql(query, {"last": 2, "before": orders["pageInfo"]["startCursor"]}, token=token)
    assert [e["node"]["number"] for e in body["data"]["me"]["orders"]["edges"]] == ["3"]


def test_orders_filtered_by_channel(saleor, mint, gql, shopper):
    make_order(shopper, 9, channel="eu", currency="EUR")
    query = '{ me { orders(first: 10, channel: "eu") { totalCount edges { node { number } } } } }'
    _, body = gql(query, token=mint(user_gid(1)))
    assert body["data"]["me"]["orders"] == {"totalCount": 1, "edges": [{"node": {"number": "9"}}]}


def test_drafts_are_hidden_from_the_customer_but_shown_to_staff(saleor, mint, gql, shopper):
    make_order(shopper, 7, status=OrderStatus.DRAFT)
    own = "{ me { orders(first: 10) { totalCount } } }"
    _, body = gql(own, token=mint(user_gid(1)))
    assert body["data"]["me"]["orders"]["totalCount"] == 3
    staff = f'{{ customer(id: "{user_gid(1)}") {{ orders(first: 10) {{ totalCount }} }} }}'
    token = mint.thirdparty(user_gid(900), ["MANAGE_USERS", "MANAGE_ORDERS"])
    _, body = gql(staff, token=token)
    assert body["data"]["customer"]["orders"]["totalCount"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('channel: "eu"', "You must provide a `first` or `last` value"),
        ("first: 1, last: 1", "Providing both `first` and `last`"),
        ("first: 101", "exceeds the `first` limit of 100"),
        ('first: 1, after: "bm90IGpzb24="', "Received cursor is invalid."),
    ],
)
def test_bad_pagination_arguments(saleor, mint, gql, shopper, args, message):
    _, body = gql(f"{{ me {{ orders({args}) {{ totalCount }} }} }}", token=mint(user_gid(1)))
    assert body["data"]["me"]["orders"] is None
    assert message in body["errors"][0]["message"]


def test_me_is_null_for_anonymous_and_for_unknown_users(saleor, mint, gql, shopper):
    assert gql("{ me { id } }")[1] == {"data": {"me": None}}
    assert gql("{ me { id } }", token=mint(user_gid(77)))[1] == {"data": {"me": None}}


def test_staff_reads_a_customer_by_crm_id_user_id_or_email(saleor, mint, gql, shopper):
    token = mint.thirdparty(user_gid(900), ["MANAGE_USERS"])
    for argument in (
        f'id: "{to_global_id("CrmCustomer", shopper.pk)}"',
        f'id: "{user_gid(1)}"',
        'email: "CUSTOMER1@example.com"',
    ):
        _, body = gql(f"{{ customer({argument}) {{ email }} }}", token=token)
        assert body == {"data": {"customer": {"email": "customer1@example.com"}}}, argument


def test_staff_token_permissions_come_from_saleor(saleor, mint, gql, shopper):
    saleor.respond(staff_answer(user_gid(900), ["MANAGE_USERS"]))
    token = mint(user_gid(900), is_staff=True)
    _, body = gql(f'{{ customer(id: "{user_gid(1)}") {{ email }} }}', token=token)
    assert body == {"data": {"customer": {"email": "customer1@example.com"}}}


def test_customer_with_a_wrong_id_type_is_a_clear_error(saleor, mint, gql, shopper):
    token = mint.thirdparty(user_gid(900), ["MANAGE_USERS"])
    _, body = gql(
        '{{ customer(id: "{}") {{ email }} }}'.format(to_global_id("Order", 1)), token=token
    )
    assert body["errors"][0]["message"] == "Must receive a CrmCustomer or User id, got Order."
    assert body["errors"][0]["extensions"]["exception"] == {"code": "INVALID", "field": "id"}
    _, body = gql(f'{{ customer(id: "{user_gid(1)}", email: "x") {{ email }} }}', token=token)
    assert body["errors"][0]["message"] == "Provide exactly one of `id` or `email`."


def test_guest_orders_are_visible_to_staff(saleor, mint, gql):
    guest = make_customer(5, saleor_user_id=None, email="guest@example.com")
    make_order(guest, 11)
    token = mint.thirdparty(user_gid(900), ["MANAGE_USERS", "MANAGE_ORDERS"])
    query = (
        '{ customer(email: "guest@example.com") '
        "{ isGuest userId orders(first: 5) { totalCount } } }"
    )
    _, body = gql(query, token=token)
    assert body["data"]["customer"] == {
        "isGuest": True,
        "userId": None,
        "orders": {"totalCount": 1},
    }


def test_customer_360_costs_a_constant_number_of_queries(saleor, mint, gql, shopper):
    token = mint(user_gid(1))
    gql(CUSTOMER_360, {"first": 10}, token=token)  # warm the instance cache
    with CaptureQueriesContext(connection) as small:
        gql(CUSTOMER_360, {"first": 10}, token=token)
    for n in range(10, 30):
        make_order(shopper, n, lines=4)
    with CaptureQueriesContext(connection) as large:
        _, body = gql(CUSTOMER_360, {"first": 10}, token=token)
    assert len(body["data"]["me"]["orders"]["edges"]) == 10
    # One statement: customer, its stats, its orders page with its total count, the lines.
    assert len(small.captured_queries) == len(large.captured_queries) == 1


@pytest.mark.usefixtures("executors_only")
def test_unexpected_failures_are_masked(saleor, mint, gql, shopper, monkeypatch):
    from saleor_crm_plugin.graphql.customers import dataloaders

    def boom(self, keys):
        raise RuntimeError("database on fire")

    # The stats read with the customer, then through their own loader.
    monkeypatch.setattr(dataloaders.CustomerByUserIdLoader, "batch_load", boom)
    _, body = gql("{ me { email channelStats { currency } } }", token=mint(user_gid(1)))
    assert body["data"] == {"me": None}
    assert body["errors"][0]["message"] == "Internal Server Error"
    assert error_codes(body) == ["INTERNAL_ERROR"]
    monkeypatch.undo()
    monkeypatch.setattr(dataloaders.ChannelStatsByCustomerIdLoader, "batch_load", boom)
    document = (
        "query ($s: Boolean = true) { me { email channelStats @include(if: $s) { currency } } }"
    )
    _, body = gql(document, token=mint(user_gid(1)))
    assert body["data"] == {"me": None}
    assert body["errors"][0]["message"] == "Internal Server Error"
    assert error_codes(body) == ["INTERNAL_ERROR"]


def test_saleor_references_for_a_gateway(saleor, mint, gql, shopper):
    query = """{ me { user { id } orders(first: 1) { edges { node {
        customer { email } lines { product { id channel } } } } } } }"""
    _, body = gql(query, token=mint(user_gid(1)))
    me = body["data"]["me"]
    assert me["user"] == {"id": user_gid(1)}
    node = me["orders"]["edges"][0]["node"]
    assert node["customer"] == {"email": "customer1@example.com"}
    assert node["lines"][0]["product"] == {
        "id": to_global_id("Product", 100),
        "channel": "default-channel",
    }


def test_malformed_crm_customer_id_is_refused_like_a_foreign_one(saleor, mint, gql, shopper):
    _, body = gql(
        '{{ customer(id: "{}") {{ email }} }}'.format(to_global_id("CrmCustomer", "abc")),
        token=mint(user_gid(1)),
    )
    assert error_codes(body) == ["PermissionDenied"]


def test_batched_pages_match_single_pages(saleor, mint, gql, shopper):
    """The window-function path (many customers) pages exactly like the single-customer one."""
    other = make_customer(2)
    for n in range(40, 44):
        make_order(other, n)
    staff = mint.thirdparty(user_gid(900), ["MANAGE_USERS", "MANAGE_ORDERS"])
    for args in ("first: 2", "last: 2"):
        selection = (
            f"crm {{ orders({args}) {{ totalCount pageInfo {{ hasNextPage hasPreviousPage }} "
            "edges { node { number } } } }"
        )
        batched = gql(
            f'{{ _entities(representations: [{{__typename: "User", id: "{user_gid(1)}"}}, '
            f'{{__typename: "User", id: "{user_gid(2)}"}}]) {{ ... on User {{ {selection} }} }} }}',
            token=staff,
        )[1]["data"]["_entities"]
        singles = [
            gql(
                f'{{ _entities(representations: [{{__typename: "User", id: "{user_gid(n)}"}}]) '
                f"{{ ... on User {{ {selection} }} }} }}",
                token=staff,
            )[1]["data"]["_entities"][0]
            for n in (1, 2)
        ]
        assert batched == singles, args
    assert [e["node"]["number"] for e in singles[1]["crm"]["orders"]["edges"]] == ["41", "40"]
    assert singles[1]["crm"]["orders"]["totalCount"] == 4


@pytest.mark.usefixtures("executors_only")
def test_cursors_are_encoded_only_when_read(saleor, mint, gql, shopper, monkeypatch):
    from saleor_crm_plugin.graphql.core import connection as relay

    encoded: list[list[object]] = []
    real = relay.encode_cursor

    def counting(values):
        encoded.append(list(values))
        return real(values)

    monkeypatch.setattr(relay, "encode_cursor", counting)
    token = mint(user_gid(1))
    _, body = gql("{ me { orders(first: 3) { pageInfo { endCursor } } } }", token=token)
    # The last edge's, for endCursor, not one per edge; once per execution (the test client
    # may also run graphql-core's executor to compare answers).
    runs = len(encoded)
    assert runs >= 1 and all(values == encoded[0] for values in encoded)
    end_cursor = body["data"]["me"]["orders"]["pageInfo"]["endCursor"]
    _, body = gql(
        "{ me { orders(first: 3) { pageInfo { startCursor endCursor } "
        "edges { cursor node { createdAt } } } } }",
        token=token,
    )
    orders = body["data"]["me"]["orders"]
    cursors = [edge["cursor"] for edge in orders["edges"]]
    assert len(set(cursors)) == 3 and cursors[-1] == end_cursor
    assert (orders["pageInfo"]["startCursor"], orders["pageInfo"]["endCursor"]) == (
        cursors[0],
        cursors[-1],
    )
    assert len(encoded) == runs + 3 * runs  # each edge's cursor once, shared with pageInfo
    _, body = gql("{ me { orders(first: 0) { pageInfo { startCursor endCursor } } } }", token=token)
    assert body["data"]["me"]["orders"]["pageInfo"] == {"startCursor": None, "endCursor": None}


def test_lines_belong_to_the_order_instance_that_asked_for_them(shopper):
    """Two instances of one order in a request (say ``me.orders`` and ``crmOrder``) share the
    loaded lines (one query); each later instance gets them attached to itself, as when every
    resolver attached them (the instances hold the same row: same currency and channel)."""
    from promise import Promise

    from saleor_crm_plugin.customers.models import Order
    from saleor_crm_plugin.graphql.core.context import GraphQLContext
    from saleor_crm_plugin.graphql.customers.dataloaders import LinesByOrderIdLoader

    pk = Order.objects.filter(customer=shopper).values_list("pk", flat=True)[0]
    first, second = Order.objects.get(pk=pk), Order.objects.get(pk=pk)
    loader = LinesByOrderIdLoader(GraphQLContext(request=None))
    with CaptureQueriesContext(connection) as queries:
        lines = Promise.all([loader.lines_of(first), loader.lines_of(second)]).get()
    assert len(queries) == 1
    assert lines[0] and [line.pk for line in lines[0]] == [line.pk for line in lines[1]]
    assert all(line.order is second for line in lines[1])
    third = Order.objects.get(pk=pk)
    assert all(line.order is third for line in loader.lines_of(third).get())


def test_line_prices_read_the_order_whether_or_not_it_was_attached(shopper):
    from saleor_crm_plugin.customers.models import OrderLine
    from saleor_crm_plugin.graphql.customers.types import CrmOrderLine

    line = OrderLine.objects.filter(order__customer=shopper).first()
    assert not OrderLine.order.is_cached(line)
    with CaptureQueriesContext(connection) as queries:
        price = CrmOrderLine.resolve_unit_price(line, None)  # loads the order once
        assert CrmOrderLine.resolve_total_price(line, None)["currency"] == price["currency"]
    assert len(queries) == 1
    assert price == {"amount": float(line.unit_price_gross), "currency": line.order.currency}


def _selects(queries: CaptureQueriesContext, table: str) -> str:
    """The columns the one statement reading ``table`` selects from it."""
    (sql,) = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    return sql.split(f' FROM "{table}"')[0].rsplit("SELECT ", 1)[1]


@pytest.mark.usefixtures("executors_only")
def test_customer_360_reads_only_the_columns_its_selection_needs(
    saleor, mint, gql, shopper, monkeypatch
):
    """Same answer as reading every column, from statements that leave out what no selected
    field reads (and still 1 query: nothing left out is loaded afterwards)."""
    from saleor_crm_plugin.graphql.customers import types

    token = mint(user_gid(1))
    gql("{ me { id } }", token=token)  # warm the instance cache
    with CaptureQueriesContext(connection) as queries:
        _, narrow = gql(CUSTOMER_360, {"first": 10}, token=token)
    assert len(queries.captured_queries) == 1
    orders = _selects(queries, "saleor_crm_plugin_order")
    assert '"currency"' in orders and '"total_gross"' in orders and '"created_at"' in orders
    assert '"total_tax"' not in orders and '"origin"' not in orders
    lines = _selects(queries, "saleor_crm_plugin_orderline")
    assert '"unit_price_gross"' in lines and '"unit_price_net"' not in lines
    assert '"category_slug"' not in lines
    customer = _selects(queries, "saleor_crm_plugin_customer")
    assert '"email"' in customer and '"metadata"' not in customer
    stats = _selects(queries, "saleor_crm_plugin_customerchannelstats")
    assert 's."total_spent"' in stats and 's."total_refunded"' not in stats

    monkeypatch.setattr(types, "selected_columns", lambda info, path=(): None)
    with CaptureQueriesContext(connection) as queries:
        _, wide = gql(CUSTOMER_360, {"first": 10}, token=token)
    assert '"total_tax"' in _selects(queries, "saleor_crm_plugin_order")
    assert narrow == wide


@pytest.mark.usefixtures("executors_only")
def test_two_selections_of_one_type_get_the_columns_each_reads(saleor, mint, gql, shopper):
    """Aliased ``me`` fields with different selections load with different columns; each
    answer is complete, none loads a left-out column afterwards."""
    query = """{
      a: me { orders(first: 2) { edges { node { number lines { sku } } } } }
      b: me { email orders(first: 2) { edges { node { total { amount } lines { quantity } } } } }
    }"""
    token = mint(user_gid(1))
    gql("{ me { id } }", token=token)  # warm the instance cache
    with CaptureQueriesContext(connection) as queries:
        status, body = gql(query, token=token)
    assert status == 200, body
    assert [e["node"]["number"] for e in body["data"]["a"]["orders"]["edges"]] == ["3", "2"]
    b_edges = body["data"]["b"]["orders"]["edges"]
    assert body["data"]["b"]["email"] == "customer1@example.com"
    assert all(e["node"]["total"]["amount"] > 0 and e["node"]["lines"] for e in b_edges)
    # Per selection: customer with its orders page and lines (no query per order or line).
    assert len(queries.captured_queries) == 2


def test_selected_columns_follow_fragments_and_stop_at_unknown_resolvers(db):
    from graphql import parse

    from saleor_crm_plugin.graphql.api import schema
    from saleor_crm_plugin.graphql.core import selection

    customer_type = schema.get_type("CrmCustomer")

    class Info:  # what ``selected_columns`` reads of a ResolveInfo
        def __init__(self, query: str) -> None:
            document = parse(query)
            operation = document.definitions[0]
            self.field_asts = [operation.selection_set.selections[0]]
            self.return_type = customer_type
            self.fragments = {
                d.name.value: d for d in document.definitions[1:] if hasattr(d, "type_condition")
            }

    info = Info(
        "{ me { id ...F orders(first: 1) { edges { node { ... on CrmOrder { total { amount } }"
        " number @include(if: false) } } } } } fragment F on CrmCustomer { isGuest firstName }"
    )
    assert selection.selected_columns(info) == {"id", "saleor_user_id", "first_name"}
    assert selection.selected_columns(info, ("orders", "edges", "node")) == {
        "total_gross",
        "currency",
        "number",
    }
    assert selection.selected_columns(info, ("orders", "nothing")) is None
    # A resolver that does not say what it reads (another domain's field): every column.
    other_domain = Info('{ me { id loyalty(channel: "c") { __typename } } }')
    assert selection.selected_columns(other_domain) is None

    @selection.reads("email")
    def marked(root, info):
        return root.email

    assert selection.resolver_reads(marked) == {"email"}
    assert selection.resolver_reads(lambda root, info: root.email) is None


def test_row_reader_defers_what_it_leaves_out(shopper):
    from saleor_crm_plugin.customers.models import Order
    from saleor_crm_plugin.graphql.customers.dataloaders import ORDERS

    with CaptureQueriesContext(connection) as queries:
        (order,) = ORDERS.fetch("t.number = %s", ["1"], only=frozenset({"number"}))
    assert '"total_gross"' not in queries.captured_queries[0]["sql"]
    assert order.get_deferred_fields() >= {"total_gross", "currency"}
    expected = Order.objects.get(pk=order.pk)
    with CaptureQueriesContext(connection) as queries:
        assert (order.number, order.total_gross) == (expected.number, expected.total_gross)
    assert len(queries.captured_queries) == 1  # the left-out column, loaded on access
    # A name that is not a column (a property): what it reads is unknown, so every column.
    (order,) = ORDERS.fetch("t.number = %s", ["1"], only=frozenset({"is_sale"}))
    assert order.get_deferred_fields() == {"field_versions"}


PAGE_LINES_DOCUMENTS = {
    "aliased twice": """{ me { orders(first: 10) { edges { node { number
        a: lines { sku } b: lines { quantity unitPrice { amount currency } } } } } } }""",
    "through fragments": """{ me { orders(first: 10) { edges { node { ...O } } } } }
        fragment O on CrmOrder { number ... on CrmOrder { lines { ...L } } }
        fragment L on CrmOrderLine { lineId productId product { id channel } totalPrice {
        amount } }""",
    "backwards": """{ me { orders(last: 2) { edges { node { number lines { sku } } } } } }""",
    "after a cursor": """{ me { orders(first: 2, after: "%(cursor)s") { edges { node {
        number lines { sku quantity } } } } } }""",
    "two pages of one customer": """{ me {
        a: orders(first: 2) { edges { node { number lines { sku totalPrice { amount } } } } }
        b: orders(first: 3) { edges { node { number lines { sku totalPrice { amount } } } } }
        } }""",
    "lines not selected": """{ me { orders(first: 10) { totalCount edges { node { number
        } } } } }""",
    "lines under a directive": """query ($with: Boolean = true) { me { orders(first: 10) {
        edges { node { number lines @include(if: $with) { sku } } } } } }""",
}


@pytest.mark.parametrize("name", PAGE_LINES_DOCUMENTS)
@pytest.mark.usefixtures("executors_only")
def test_lines_read_with_their_page_answer_as_the_lines_loader(
    saleor, mint, gql, shopper, monkeypatch, name
):
    """The lines an orders page reads along (as plain lists: no promise per order) give the
    answer ``LinesByOrderIdLoader`` gives, in as many queries or fewer (a first page of one
    customer reads them in its own statement); an order without lines gets an empty list.
    Where the lines are not surely selected, the page reads none of them."""
    from saleor_crm_plugin.graphql.customers import dataloaders, types

    make_order(shopper, 7, lines=0)  # the newest order: on every page
    token = mint(user_gid(1))
    _, first = gql("{ me { orders(first: 1) { pageInfo { endCursor } } } }", token=token)
    document = PAGE_LINES_DOCUMENTS[name] % {
        "cursor": first["data"]["me"]["orders"]["pageInfo"]["endCursor"]
    }
    loader_batch_load = dataloaders.LinesByOrderIdLoader.batch_load
    loader_calls: list[int] = []

    def counted(self, keys):
        loader_calls.append(len(keys))
        return loader_batch_load(self, keys)

    monkeypatch.setattr(dataloaders.LinesByOrderIdLoader, "batch_load", counted)
    with CaptureQueriesContext(connection) as along:
        status, body = gql(document, token=token)
    assert status == 200 and "errors" not in body, body
    read_along = not loader_calls
    monkeypatch.setattr(types, "surely_selected", lambda info, path: False)
    with CaptureQueriesContext(connection) as loaded:
        _, expected = gql(document, token=token)
    assert body == expected
    # The lines loader's query saved by each first page of one customer (the lines come in
    # the page's statement), and one more for aliases of the lines (one read for both).
    saved = {
        "aliased twice": 2,
        "through fragments": 1,
        "backwards": 1,
        "two pages of one customer": 1,
    }.get(name, 0)
    assert len(along.captured_queries) == len(loaded.captured_queries) - saved
    lines_queries = [q for q in along.captured_queries if "orderline" in q["sql"]]
    with_page = [q for q in lines_queries if '"saleor_crm_plugin_order" t' in q["sql"]]
    if name == "lines not selected":
        assert not lines_queries
    elif name == "lines under a directive":
        assert not read_along and len(lines_queries) == 1 and not with_page
    elif name == "after a cursor":  # a later page: its lines in a query of their own
        assert read_along and len(lines_queries) == 1 and not with_page
    else:
        pages = 2 if name == "two pages of one customer" else 1
        assert read_along and len(lines_queries) == len(with_page) == pages
        nodes = [e["node"] for page in body["data"]["me"].values() for e in page["edges"]]
        expected_numbers = {
            "backwards": {"1", "2"},
            "after a cursor": {"2", "3"},
            "two pages of one customer": {"2", "3", "7"},
        }
        assert {n["number"] for n in nodes} == expected_numbers.get(name, {"1", "2", "3", "7"})
        for node in nodes:
            if node["number"] == "7":
                assert [node.get(k) for k in ("lines", "a", "b") if k in node] in ([[]], [[], []])
            else:
                assert all(node[k] for k in ("lines", "a", "b") if k in node)


def test_lines_read_with_the_pages_of_many_customers(saleor, mint, gql, shopper):
    """Pages of several customers (the window-function path): one lines query for all of
    them, each order with its own lines."""
    other = make_customer(2)
    make_order(other, 40, lines=3)
    make_order(other, 41, lines=0)
    staff = mint.thirdparty(user_gid(900), ["MANAGE_USERS", "MANAGE_ORDERS"])
    document = (
        f'{{ _entities(representations: [{{__typename: "User", id: "{user_gid(1)}"}}, '
        f'{{__typename: "User", id: "{user_gid(2)}"}}]) {{ ... on User {{ crm {{ '
        "orders(first: 5) { edges { node { number lines { lineId quantity } } } } } } } }"
    )
    with CaptureQueriesContext(connection) as queries:
        status, body = gql(document, token=staff)
    assert status == 200 and "errors" not in body, body
    assert len([q for q in queries.captured_queries if "orderline" in q["sql"]]) == 1
    lines = {
        e["node"]["number"]: [line["quantity"] for line in e["node"]["lines"]]
        for entity in body["data"]["_entities"]
        for e in entity["crm"]["orders"]["edges"]
    }
    assert lines == {"1": [1, 2], "2": [1, 2], "3": [1, 2], "40": [1, 2, 3], "41": []}


STATS_DOCUMENTS = {
    "plain": "{ me { email channelStats { channelSlug currency totalSpent { amount } } } }",
    "aliased twice": """{ me { a: channelStats { currency } b: channelStats { orderCount
        totalRefunded { amount currency } firstOrderAt } } }""",
    "through fragments": """{ me { ...C } } fragment C on CrmCustomer { id
        ... on CrmCustomer { channelStats { ...S } } }
        fragment S on CrmCustomerChannelStats { channelId lastOrderAt totalSpent { currency } }""",
    "two aliases of me": """{ a: me { channelStats { currency } }
        b: me { email channelStats { totalSpent { amount } } } }""",
    "with the orders": """{ me { channelStats { currency } orders(first: 2) { totalCount
        edges { node { number lines { sku } } } } } }""",
    "stats not selected": "{ me { email orderCount } }",
    "stats under a directive": """query ($with: Boolean = true) { me { email
        channelStats @include(if: $with) { currency } } }""",
}


@pytest.mark.parametrize("user", [1, 2])
@pytest.mark.parametrize("name", STATS_DOCUMENTS)
@pytest.mark.usefixtures("executors_only")
def test_channel_stats_read_with_the_customer_answer_as_the_stats_loader(
    saleor, mint, gql, shopper, monkeypatch, name, user
):
    """``me``'s channel stats read with the customer (one statement, plain lists) give the
    answer ``ChannelStatsByCustomerIdLoader`` gives, in one query fewer per ``me`` that
    selects them; a customer without stats (user 2) gets an empty list. Where the stats
    are not surely selected, the customer's statement reads none of them."""
    from saleor_crm_plugin.graphql.customers import dataloaders, schema

    make_customer(2)  # no stats, no orders
    token = mint(user_gid(user))
    loader_calls: list[int] = []
    loader_batch_load = dataloaders.ChannelStatsByCustomerIdLoader.batch_load

    def counted(self, keys):
        loader_calls.append(len(keys))
        return loader_batch_load(self, keys)

    monkeypatch.setattr(dataloaders.ChannelStatsByCustomerIdLoader, "batch_load", counted)
    gql("{ me { id } }", token=token)  # warm the instance cache
    with CaptureQueriesContext(connection) as along:
        status, body = gql(STATS_DOCUMENTS[name], token=token)
    assert status == 200 and "errors" not in body, body
    read_along = not loader_calls
    monkeypatch.setattr(schema, "surely_selected", lambda info, path: False)
    with CaptureQueriesContext(connection) as loaded:
        _, expected = gql(STATS_DOCUMENTS[name], token=token)
    assert body == expected
    # Stats read in the customer's statement (a join, or with the orders page too).
    joins = [
        q
        for q in along.captured_queries
        if '"saleor_crm_plugin_customerchannelstats"' in q["sql"]
        and '"saleor_crm_plugin_customer" t' in q["sql"]
    ]
    if name in ("stats not selected", "stats under a directive"):
        assert not joins and len(along.captured_queries) == len(loaded.captured_queries)
        assert read_along == (name == "stats not selected")
    else:
        mes = 2 if name == "two aliases of me" else 1
        assert read_along and len(joins) == mes
        # One query fewer per ``me``; stats aliased twice with different fields: one join
        # where their loader reads them once per selection.
        saved = 2 if name in ("two aliases of me", "aliased twice") else 1
        assert len(along.captured_queries) == len(loaded.captured_queries) - saved
    stats = [
        value
        for me in body["data"].values()
        for key, value in me.items()
        if key in ("channelStats", "a", "b")
    ]
    if user == 2:
        assert all(value == [] for value in stats)
    elif name != "stats not selected":
        assert stats and all(len(value) == 2 for value in stats)


def test_surely_selected_ignores_what_a_directive_may_leave_out(db):
    from graphql import parse

    from saleor_crm_plugin.graphql.core.selection import surely_selected

    class Info:
        def __init__(self, query: str) -> None:
            document = parse(query)
            self.field_asts = [document.definitions[0].selection_set.selections[0]]
            self.fragments = {
                d.name.value: d for d in document.definitions[1:] if hasattr(d, "type_condition")
            }

    path = ("edges", "node", "lines")
    assert surely_selected(Info("{ o { edges { node { lines { sku } } } } }"), path)
    assert surely_selected(
        Info("{ o { edges { ... on E { node { ...F } } } } } fragment F on N { x lines { a } }"),
        path,
    )
    assert not surely_selected(Info("{ o { edges { node { number } } } }"), path)
    assert not surely_selected(Info("{ o { pageInfo { endCursor } } }"), path)
    for conditional in (
        "{ o { edges { node { lines @include(if: $a) { sku } } } } }",
        "{ o { edges @skip(if: $a) { node { lines { sku } } } } }",
        "{ o { edges { node { ...F @include(if: $a) } } } } fragment F on N { lines { a } }",
        "{ o { edges { node { ... @include(if: $a) { lines { a } } } } } }",
    ):
        assert not surely_selected(Info(conditional), path), conditional
    # One unconditional way is enough.
    assert surely_selected(
        Info("{ o { edges { node { lines @include(if: $a) { sku } lines { a } } } } }"), path
    )


@pytest.mark.parametrize("batched", [False, True])
def test_later_pages_and_batched_pages_read_only_the_selected_columns(
    saleor, mint, gql, shopper, monkeypatch, batched
):
    """Pages after a cursor (the ORM path) and pages of many customers (the window query)
    leave out the columns no selected field reads, as first pages do, same answer."""
    from saleor_crm_plugin.graphql.customers import types

    other = make_customer(2)
    make_order(other, 40)
    staff = mint.thirdparty(user_gid(900), ["MANAGE_USERS", "MANAGE_ORDERS"])
    _, first = gql(
        "{ me { orders(first: 1) { pageInfo { endCursor } } } }", token=mint(user_gid(1))
    )
    cursor = first["data"]["me"]["orders"]["pageInfo"]["endCursor"]
    page = "first: 2" if batched else f'first: 2, after: "{cursor}"'
    users = (1, 2) if batched else (1,)
    representations = ", ".join(f'{{__typename: "User", id: "{user_gid(n)}"}}' for n in users)
    document = (
        f"{{ _entities(representations: [{representations}]) {{ ... on User {{ crm {{ "
        f"orders({page}) {{ pageInfo {{ endCursor }} edges {{ cursor node {{ number "
        "total { amount currency } lines { sku } } } } } } } }"
    )
    with CaptureQueriesContext(connection) as queries:
        _, narrow = gql(document, token=staff)

    def orders_sql(queries: CaptureQueriesContext) -> str:
        # The whole statement: the window query selects its columns in a subquery.
        (sql,) = [
            q["sql"] for q in queries.captured_queries if '"saleor_crm_plugin_order"' in q["sql"]
        ]
        return sql

    orders = orders_sql(queries)
    assert '"total_gross"' in orders and '"created_at"' in orders
    assert '"total_tax"' not in orders and '"field_versions"' not in orders
    monkeypatch.setattr(types, "selected_columns", lambda info, path=(): None)
    with CaptureQueriesContext(connection) as wide_queries:
        _, wide = gql(document, token=staff)
    wide_orders = orders_sql(wide_queries)
    assert '"total_tax"' in wide_orders and '"field_versions"' not in wide_orders
    assert narrow == wide and "errors" not in narrow
    assert len(queries) == len(wide_queries)


def test_resolvers_that_never_read_info_are_called_without_one(shopper):
    """The lean executor calls these without building a ResolveInfo (ten order ids and a
    total count a customer 360): they answer the same with ``info=None``."""
    from saleor_crm_plugin.customers.models import Order
    from saleor_crm_plugin.graphql.core.connection import CountableConnection
    from saleor_crm_plugin.graphql.core.executor import _IGNORES_INFO
    from saleor_crm_plugin.graphql.customers.types import CrmCustomer, CrmOrder

    order = Order.objects.filter(customer=shopper).first()
    resolvers = {
        CrmOrder.resolve_order_id: order.saleor_order_id,
        CrmOrder.resolve_voucher_code: None,
        CrmCustomer.resolve_user_id: shopper.saleor_user_id,
        CrmCustomer.resolve_is_guest: False,
    }
    for resolver, expected in resolvers.items():
        assert getattr(resolver, _IGNORES_INFO, False), resolver
        root = order if resolver.__qualname__.startswith("CrmOrder") else shopper
        assert resolver(root, None) == expected
    assert CrmCustomer.resolve_user(shopper, None).id == shopper.saleor_user_id
    page = type("Page", (), {"count_fn": staticmethod(lambda: 3)})()
    assert CountableConnection.resolve_total_count(page, None) == 3

    # Lines read with their page are answered without a ResolveInfo either.
    from saleor_crm_plugin.graphql.core.executor import _SHORTCUT
    from saleor_crm_plugin.graphql.customers.dataloaders import lines_loaded

    assert getattr(CrmOrder.resolve_lines, _SHORTCUT) is lines_loaded
    assert lines_loaded(order) is None  # not read with a page: the resolver's loader


ME_ORDERS_DOCUMENTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "customer 360": (CUSTOMER_360, {"first": 10}),
    "customer 360, a page beyond": (CUSTOMER_360, {"first": 2}),
    "first page as a variable cursor of null": (CUSTOMER_360, {"first": 2, "after": None}),
    "backwards": (
        "{ me { orders(last: 2) { totalCount pageInfo { hasNextPage "
        "hasPreviousPage } edges { node { number lines { sku } } } } } }",
        None,
    ),
    "a channel, by variable": (
        """query ($c: String) { me { email orders(first: 5, channel: $c) {
        totalCount edges { node { number channelSlug } } } } }""",
        {"c": "eu"},
    ),
    "without lines": ("{ me { orders(first: 0) { totalCount edges { node { number } } } } }", None),
    "through fragments": (
        """{ me { ...C } } fragment C on CrmCustomer { orders(first: 2) {
        edges { ...E } } } fragment E on CrmOrderCountableEdge { node { number
        lines { quantity } } }""",
        None,
    ),
    "two aliases of me": (
        """{ a: me { orders(first: 2) { edges { node { number } } } }
        b: me { orders(first: 2) { edges { node { number } } } } }""",
        None,
    ),
    "after a cursor": (
        CUSTOMER_360,
        {"first": 2, "after": "WyIyMDI2LTAxLTAzVDAwOjAwOjAwKzAwOjAwIiwgMl0="},
    ),
    "two pages": (
        """{ me { a: orders(first: 1) { edges { node { number } } }
        b: orders(first: 2) { edges { node { number } } } } }""",
        None,
    ),
    "under a directive": (
        """query ($w: Boolean = true) { me { orders(first: 2)
        @include(if: $w) { edges { node { number } } } } }""",
        None,
    ),
    "first and last": ("{ me { email orders(first: 1, last: 1) { totalCount } } }", None),
    "too many": ("{ me { email orders(first: 100000) { totalCount } } }", None),
    "no page size": ("{ me { email orders { totalCount } } }", None),
}


@pytest.mark.parametrize("user", [1, 2, 3])
@pytest.mark.parametrize("name", ME_ORDERS_DOCUMENTS)
@pytest.mark.usefixtures("executors_only")
def test_orders_page_read_with_me_answers_as_its_loader(
    saleor, mint, gql, shopper, monkeypatch, name, user
):
    """``me``'s first orders page read in the customer's statement (with the stats and the
    lines) gives the answer ``OrdersPageByCustomerLoader`` gives, errors included, in one
    statement fewer; later pages, aliased pages, pages under a directive and invalid page
    arguments are read by the loader as before. User 2 has no order, user 3 no customer;
    drafts are left out for a customer's own token."""
    from saleor_crm_plugin.graphql.customers import dataloaders, schema

    make_customer(2)
    make_order(shopper, 4, lines=1, channel="eu", currency="EUR")
    make_order(shopper, 5, lines=2, status=OrderStatus.DRAFT)
    document, variables = ME_ORDERS_DOCUMENTS[name]
    token = mint(user_gid(user))
    loader_calls: list[int] = []
    loader_batch_load = dataloaders.OrdersPageByCustomerLoader.batch_load

    def counted(self, keys):
        loader_calls.append(len(keys))
        return loader_batch_load(self, keys)

    monkeypatch.setattr(dataloaders.OrdersPageByCustomerLoader, "batch_load", counted)
    gql("{ me { id } }", token=token)  # warm the instance cache
    with CaptureQueriesContext(connection) as along:
        status, body = gql(document, variables, token=token)
    read_along = not loader_calls
    monkeypatch.setattr(schema, "orders_page_asked", lambda info, requester: None)
    with CaptureQueriesContext(connection) as loaded:
        expected_status, expected = gql(document, variables, token=token)
    assert (status, body) == (expected_status, expected)
    prefetched = name in (
        "customer 360",
        "customer 360, a page beyond",
        "first page as a variable cursor of null",
        "backwards",
        "a channel, by variable",
        "without lines",
        "through fragments",
        "two aliases of me",
    )
    if name in ("first and last", "too many", "no page size"):
        assert user == 3 or body["errors"]
        if "data" not in body:  # refused before execution (``limits``)
            return
    else:
        assert "errors" not in body, body
    if user == 3:
        assert all(me is None for me in body["data"].values())
        return
    assert read_along == prefetched
    saved = 1 if prefetched and user == 1 else 0
    if prefetched and user == 2:
        saved = 1  # no order: the page read with the customer is empty
    assert len(along.captured_queries) == len(loaded.captured_queries) - saved
    if prefetched:
        assert len(along.captured_queries) == 1
    if user == 1 and name in ("customer 360", "backwards", "a channel, by variable"):
        numbers = [e["node"]["number"] for e in body["data"]["me"]["orders"]["edges"]]
        assert numbers == {"customer 360": ["4", "3", "2", "1"], "backwards": ["2", "1"]}.get(
            name, ["4"]
        )


def test_remembered_limits_follow_setting_changes(saleor, mint, gql, shopper, settings):
    """The limits are remembered between requests (``crm_settings``) and forgotten when a
    setting changes (``override_settings``, pytest-django's ``settings``): the answers are
    those of reading Django's settings at every call."""
    from django.test import override_settings

    from saleor_crm_plugin.conf import CRMSettings, crm_settings

    token = mint(user_gid(1))
    query = "{ me { orders(first: 5) { edges { node { number } } } } }"

    def first_error() -> str | None:
        body = gql(query, token=token)[1]
        if "errors" in body:
            return body["errors"][0]["message"]
        assert len(body["data"]["me"]["orders"]["edges"]) == 3
        return None

    assert first_error() is None
    for name in ("GRAPHQL_MAX_DEPTH", "GRAPHQL_MAX_COMPLEXITY", "GRAPHQL_MAX_PAGE_SIZE"):
        assert getattr(crm_settings, name) == getattr(CRMSettings(), name)  # a fresh read
    with override_settings(CRM_GRAPHQL_MAX_DEPTH=3):
        assert crm_settings.GRAPHQL_MAX_DEPTH == 3
        assert first_error() == "The query exceeds the maximum depth of 3 (it has 5)."
    assert first_error() is None
    settings.CRM_GRAPHQL_MAX_PAGE_SIZE = 4
    assert first_error().endswith("exceeds the `first` limit of 4 records.")
    settings.CRM_GRAPHQL_MAX_COMPLEXITY = 2
    assert first_error().startswith("The query exceeds the maximum cost of 2 ")
    del settings.CRM_GRAPHQL_MAX_COMPLEXITY
    del settings.CRM_GRAPHQL_MAX_PAGE_SIZE
    assert first_error() is None
    assert crm_settings.GRAPHQL_MAX_PAGE_SIZE == CRMSettings().GRAPHQL_MAX_PAGE_SIZE == 100


def test_me_reads_kept_by_shape_carry_each_requests_parameters(
    saleor, mint, gql, shopper, monkeypatch
):
    """``_with_orders`` keeps its reads by shape: a request of a known shape reads with its
    own user id and channel, the reads those of a fresh build, and the answers those of a
    cold cache."""
    from saleor_crm_plugin.core import rows
    from saleor_crm_plugin.graphql.customers import dataloaders

    second = make_customer(2)
    make_order(shopper, 4, lines=1, channel="eu", currency="EUR")
    make_order(second, 6, lines=2, channel="eu", currency="EUR")
    seen: list[list[Any]] = []
    fetch_together = rows.fetch_together

    statements: list[Any] = []

    def spy(reads: Any, *statement: Any) -> Any:
        seen.append(list(reads))
        statements.append(statement)
        return fetch_together(reads, *statement)

    monkeypatch.setattr(dataloaders, "fetch_together", spy)
    query = (
        "query Q($channel: String) { me { email channelStats { channelSlug } "
        "orders(first: 2, channel: $channel) { totalCount edges { node { number "
        "lines { sku } } } } } }"
    )
    cases = [(1, None), (2, None), (1, "eu"), (2, "eu"), (1, None), (2, "eu")]
    warm = []
    for user, channel in cases:
        warm.append(gql(query, {"channel": channel}, token=mint(user_gid(user))))
    warm_reads = list(seen)
    # The statement kept with the reads is the one ``fetch_together`` makes for them.
    assert statements == [(rows.together(reads),) for reads in warm_reads]
    seen.clear()
    cold = []
    for user, channel in cases:
        dataloaders._WITH_ORDERS_READS.clear()
        cold.append(gql(query, {"channel": channel}, token=mint(user_gid(user))))
    assert warm == cold
    assert all("errors" not in body for _, body in warm)
    assert [list(map(tuple, reads)) for reads in warm_reads] == [
        list(map(tuple, reads)) for reads in seen
    ]
    # Each request runs twice (the lean executor, then graphql-core to compare: conftest).
    runs = len(warm_reads) // len(cases)
    assert [reads[0].params for reads in warm_reads] == [
        [user_gid(u)] for u, _ in cases for _ in range(runs)
    ]
    drafts = OrderStatus.DRAFT.value
    assert [list(reads[2].params) for reads in warm_reads] == [
        ([c] if c else []) + [drafts] for _, c in cases for _ in range(runs)
    ]
