"""``crmCustomers``: the operators' customer list (search, sort, keyset pages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.graphql.conftest import error_codes, make_customer, make_order, user_gid

LIST = """query($first: Int, $after: String, $sort: CrmCustomerSortingInput,
               $filter: CrmCustomerFilterInput) {
  crmCustomers(first: $first, after: $after, sortBy: $sort, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { email orderCount lastOrderAt } }
  }
}"""


@pytest.fixture
def customers(db):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    made = []
    for n, orders in [(1, 3), (2, 0), (3, 5), (4, 1)]:
        last = start + timedelta(days=n) if orders else None
        made.append(make_customer(n, order_count=orders, last_order_at=last))
    make_customer(
        5, saleor_user_id=None, email="walk-in@example.com", order_count=1, last_order_at=start
    )
    make_customer(6, erased_at=start, email="")
    return made


@pytest.fixture
def staff_token(mint):
    return mint.thirdparty(user_gid(900), ["MANAGE_USERS", "MANAGE_ORDERS"])


def _emails(body):
    return [e["node"]["email"] for e in body["data"]["crmCustomers"]["edges"]]


def test_default_order_is_last_order_newest_first(saleor, gql, customers, staff_token):
    _, body = gql(LIST, {"first": 10}, token=staff_token)
    assert _emails(body) == [
        "customer4@example.com",
        "customer3@example.com",
        "customer1@example.com",
        "walk-in@example.com",
        "customer2@example.com",  # never ordered: last
    ]
    assert body["data"]["crmCustomers"]["totalCount"] == 5  # the erased customer is left out


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        # ties (customer 4 and the guest, one order each) break on the primary key, newest first
        ({"field": "ORDER_COUNT", "direction": "DESC"}, [3, 1, 5, 4]),
        ({"field": "ORDER_COUNT", "direction": "ASC"}, [2, 4, 5, 1]),
        ({"field": "EMAIL", "direction": "ASC"}, [1, 2, 3, 4]),
    ],
)
def test_sorting(saleor, gql, customers, staff_token, sort, expected):
    _, body = gql(LIST, {"first": 4, "sort": sort}, token=staff_token)
    names = {5: "walk-in@example.com"}
    assert _emails(body) == [names.get(n, f"customer{n}@example.com") for n in expected]


def test_pages_follow_cursors_on_every_sort(saleor, gql, customers, staff_token):
    for sort in (
        {"field": "LAST_ORDER_AT", "direction": "DESC"},
        {"field": "LAST_ORDER_AT", "direction": "ASC"},
        {"field": "ORDER_COUNT", "direction": "DESC"},
        {"field": "CREATED_AT", "direction": "ASC"},
    ):
        _, whole = gql(LIST, {"first": 10, "sort": sort}, token=staff_token)
        seen, after = [], None
        while True:
            _, body = gql(LIST, {"first": 2, "after": after, "sort": sort}, token=staff_token)
            seen += _emails(body)
            page = body["data"]["crmCustomers"]["pageInfo"]
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
        assert seen == _emails(whole), sort


def test_search_and_guest_filter(saleor, gql, customers, staff_token):
    _, body = gql(LIST, {"first": 10, "filter": {"search": "WALK"}}, token=staff_token)
    assert _emails(body) == ["walk-in@example.com"]
    _, body = gql(LIST, {"first": 10, "filter": {"search": "first3"}}, token=staff_token)
    assert _emails(body) == ["customer3@example.com"]
    _, body = gql(LIST, {"first": 10, "filter": {"isGuest": True}}, token=staff_token)
    assert _emails(body) == ["walk-in@example.com"]
    _, body = gql(LIST, {"first": 10, "filter": {"isGuest": False}}, token=staff_token)
    assert len(_emails(body)) == 4


def test_customers_with_their_orders_cost_constant_queries(saleor, gql, staff_token):
    query = """{ crmCustomers(first: 20) { edges { node { email channelStats { currency }
        orders(first: 3) { totalCount edges { node { number lines { sku } } } } } } } }"""
    counts = []
    for batch in (range(1, 3), range(3, 11)):
        for n in batch:
            customer = make_customer(n)
            for k in range(4):
                make_order(customer, n * 10 + k)
        gql(query, token=staff_token)
        with CaptureQueriesContext(connection) as queries:
            status, body = gql(query, token=staff_token)
        assert status == 200 and "errors" not in body, body
        counts.append(len(queries.captured_queries))
    assert len(body["data"]["crmCustomers"]["edges"]) == 10
    # customers page, stats, orders pages with their counts (window functions), lines
    assert counts == [4, 4]


@pytest.mark.parametrize("permissions", [[], ["MANAGE_ORDERS", "MANAGE_PRODUCTS"]])
def test_needs_manage_users(saleor, gql, mint, customers, permissions):
    _, body = gql(LIST, {"first": 1}, token=mint.thirdparty(user_gid(900), permissions))
    assert body["data"]["crmCustomers"] is None
    assert error_codes(body) == ["PermissionDenied"]


def test_customers_anonymous_and_expired(saleor, gql, mint, customers):
    _, body = gql(LIST, {"first": 1})
    assert error_codes(body) == ["PermissionDenied"]
    _, body = gql(LIST, {"first": 1}, token=mint(user_gid(1)))
    assert error_codes(body) == ["PermissionDenied"]
    status, body = gql(LIST, {"first": 1}, token=mint(user_gid(1), expires_in=-1))
    assert status == 401 and error_codes(body) == ["ExpiredSignatureError"]
