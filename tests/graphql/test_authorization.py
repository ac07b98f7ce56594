"""Every resolver against another customer's id, an anonymous call and an expired token.

A customer sees only their own data; staff and apps need the Saleor permission that guards
the same data in Saleor. Each case also runs with the rightful caller, so a resolver that
denied everybody would fail here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from saleor_crm_plugin.core.ids import to_global_id
from tests.graphql.conftest import error_codes, make_customer, make_order, user_gid

VICTIM, ATTACKER = 1, 2
PRODUCT_ID = to_global_id("Product", 100)


def _victim_order_id() -> str:
    return to_global_id("Order", f"00000000-0000-0000-0000-{1:012d}")


# name -> (document, path to the guarded value, permissions that let staff in)
CASES: dict[str, tuple[Callable[[Any], str], list[str], list[str]]] = {
    "customer(id: CrmCustomer)": (
        lambda c: '{{ customer(id: "{}") {{ email }} }}'.format(to_global_id("CrmCustomer", c.pk)),
        ["customer"],
        ["MANAGE_USERS"],
    ),
    "customer(id: User)": (
        lambda c: f'{{ customer(id: "{c.saleor_user_id}") {{ email }} }}',
        ["customer"],
        ["MANAGE_USERS"],
    ),
    "customer(email)": (
        lambda c: f'{{ customer(email: "{c.email}") {{ email }} }}',
        ["customer"],
        ["MANAGE_USERS"],
    ),
    "CrmCustomer.orders": (
        lambda c: (
            f'{{ customer(id: "{c.saleor_user_id}") {{ orders(first: 1) {{ totalCount }} }} }}'
        ),
        ["customer"],  # the customer itself is already refused without MANAGE_USERS
        ["MANAGE_USERS", "MANAGE_ORDERS"],
    ),
    "_entities User.crm": (
        lambda c: (
            f'{{ _entities(representations: [{{__typename: "User", id: "{c.saleor_user_id}"}}]) '
            "{ ... on User { crm { email } } } }"
        ),
        ["_entities", 0, "crm"],
        ["MANAGE_USERS"],
    ),
    "_entities Order.crm": (
        lambda c: (
            f'{{ _entities(representations: [{{__typename: "Order", id: "{_victim_order_id()}"}}]) '
            "{ ... on Order { crm { number } } } }"
        ),
        ["_entities", 0, "crm"],
        ["MANAGE_ORDERS"],
    ),
    "_entities Order.crm.customer": (
        lambda c: (
            f'{{ _entities(representations: [{{__typename: "Order", id: "{_victim_order_id()}"}}]) '
            "{ ... on Order { crm { customer { email } } } } }"
        ),
        ["_entities", 0, "crm"],
        ["MANAGE_ORDERS", "MANAGE_USERS"],
    ),
    "crmOrder(id: Order)": (
        lambda c: f'{{ crmOrder(id: "{_victim_order_id()}") {{ number }} }}',
        ["crmOrder"],
        ["MANAGE_ORDERS"],
    ),
    "crmOrder(id: CrmOrder)": (
        lambda c: '{{ crmOrder(id: "{}") {{ number }} }}'.format(
            to_global_id("CrmOrder", c.orders.get().pk)
        ),
        ["crmOrder"],
        ["MANAGE_ORDERS"],
    ),
    "crmCustomers": (
        lambda c: "{ crmCustomers(first: 5) { totalCount } }",
        ["crmCustomers"],
        ["MANAGE_USERS"],
    ),
    "crmProduct.stats": (
        lambda c: f'{{ crmProduct(id: "{PRODUCT_ID}") {{ stats {{ unitsSold }} }} }}',
        ["crmProduct", "stats"],
        ["MANAGE_PRODUCTS"],
    ),
    "_entities Product.crm.stats": (
        lambda c: (
            f'{{ _entities(representations: [{{__typename: "Product", id: "{PRODUCT_ID}", '
            'channel: "default-channel"}]) { ... on Product { crm { stats { unitsSold } } } } }'
        ),
        ["_entities", 0, "crm", "stats"],
        ["MANAGE_PRODUCTS"],
    ),
}
OWNER_READABLE = {
    "crmOrder(id: Order)",
    "crmOrder(id: CrmOrder)",
    "customer(id: CrmCustomer)",
    "customer(id: User)",
    "_entities User.crm",
    "_entities Order.crm",
    "_entities Order.crm.customer",
}


@pytest.fixture
def victim(db):
    make_customer(ATTACKER)
    customer = make_customer(VICTIM)
    make_order(customer, 1)
    return customer


def _dig(data: Any, path: list[Any]) -> Any:
    for step in path:
        if data is None:
            return None
        data = data[step]
    return data


@pytest.mark.parametrize("case", sorted(CASES))
def test_another_customers_data_is_refused(saleor, mint, gql, victim, case):
    document, path, _ = CASES[case]
    status, body = gql(document(victim), token=mint(user_gid(ATTACKER)))
    assert status == 200
    assert _dig(body["data"], path) is None
    assert error_codes(body) == ["PermissionDenied"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_anonymous_is_refused(saleor, gql, victim, case):
    document, path, _ = CASES[case]
    status, body = gql(document(victim))
    assert status == 200
    assert _dig(body["data"], path) is None
    assert error_codes(body) == ["PermissionDenied"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_expired_token_is_refused(saleor, mint, gql, victim, case):
    document, _, _ = CASES[case]
    status, body = gql(document(victim), token=mint(user_gid(VICTIM), expires_in=-1))
    assert status == 401
    assert "data" not in body
    assert error_codes(body) == ["ExpiredSignatureError"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_staff_with_the_permission_is_let_in(saleor, mint, gql, victim, case):
    document, path, permissions = CASES[case]
    _status, body = gql(document(victim), token=mint.thirdparty(user_gid(900), permissions))
    assert "errors" not in body, body
    assert _dig(body["data"], path) is not None


@pytest.mark.parametrize("case", sorted(CASES))
def test_staff_without_the_permission_is_refused(saleor, mint, gql, victim, case):
    document, path, permissions = CASES[case]
    others = ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_PRODUCTS", "MANAGE_GIFT_CARD"]
    granted = [p for p in others if p not in permissions]
    _status, body = gql(document(victim), token=mint.thirdparty(user_gid(900), granted))
    assert _dig(body["data"], path) is None
    assert "PermissionDenied" in error_codes(body)


@pytest.mark.parametrize("case", sorted(OWNER_READABLE))
def test_the_customer_reads_their_own_data(saleor, mint, gql, victim, case):
    document, path, _ = CASES[case]
    _status, body = gql(document(victim), token=mint(user_gid(VICTIM)))
    assert "errors" not in body, body
    assert _dig(body["data"], path) is not None


def test_me_never_shows_another_customer(saleor, mint, gql, victim):
    _, body = gql(
        "{ me { email orders(first: 5) { totalCount } } }", token=mint(user_gid(ATTACKER))
    )
    assert body == {"data": {"me": {"email": "customer2@example.com", "orders": {"totalCount": 0}}}}


def test_me_anonymous_and_expired(saleor, mint, gql, victim):
    assert gql("{ me { email } }") == (200, {"data": {"me": None}})
    status, body = gql("{ me { email } }", token=mint(user_gid(VICTIM), expires_in=-1))
    assert status == 401 and error_codes(body) == ["ExpiredSignatureError"]


def test_missing_customer_looks_like_a_foreign_one(saleor, mint, gql, victim):
    # Probing ids must not reveal which customers exist.
    missing = '{{ customer(id: "{}") {{ email }} }}'.format(to_global_id("CrmCustomer", 999999))
    _, body = gql(missing, token=mint(user_gid(ATTACKER)))
    assert error_codes(body) == ["PermissionDenied"]
