"""GraphQL test kit: a Saleor (FakeSaleor) serving a JWKS of a test RSA key, tokens minted with
that key exactly as Saleor mints them, and a client posting documents to ``/graphql/``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache import cache as django_cache

from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.models import (
    Customer,
    CustomerChannelStats,
    Order,
    OrderLine,
    OrderStatus,
)
from tests.conftest import FakeSaleor

KID = "crm-test-key"
APP_ID = to_global_id("App", 42)


@cache
def private_key(kid: str = KID) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(*kids: str) -> dict[str, Any]:
    keys = []
    for kid in kids:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key(kid).public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        keys.append(jwk)
    return {"keys": keys}


@pytest.fixture
def executors_only() -> Iterator[None]:
    """For tests of the executors' own reads (loaders, columns, statements): the customer
    360 documents they send are otherwise answered by ``sql_render`` (tested, against
    these executors, in ``test_sql_render.py``)."""
    from saleor_crm_plugin.graphql.customers import sql_render

    sql_render.SQL_RENDER["enabled"] = False
    yield
    sql_render.SQL_RENDER["enabled"] = True


RENDERER_USES: list[int] = [0]


@pytest.fixture(autouse=True)
def _rendered_answers_match_the_executors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer ``sql_render`` gives in these tests is also worked out by the executors
    (the lean one, else graphql-core, on a fresh context) and the two response bodies must
    be the same bytes: the GraphQL tests are a differential test of the renderer, as the
    root conftest makes the suite one of the lean executor. The second run's SQL is dropped
    from the captured queries, so query counts still measure what a request costs."""
    import orjson
    from django.db import connection
    from graphql.execution import execute

    from saleor_crm_plugin.graphql import views
    from saleor_crm_plugin.graphql.core import executor
    from saleor_crm_plugin.graphql.core.context import GraphQLContext

    rendered = views._rendered

    def checked(
        schema: Any, document: Any, plans: Any, name: Any, context: Any, variables: Any
    ) -> Any:
        text = rendered(schema, document, plans, name, context, variables)
        if text is None:
            return None
        logged = len(connection.queries_log)
        fresh = GraphQLContext(request=context.request, requester=context.requester)
        try:
            data = executor.execute_query(schema, document, fresh, variables, name, plans)
        except executor.Unsupported:
            fresh.release()
            fresh = GraphQLContext(request=context.request, requester=context.requester)
            result = execute(
                schema,
                document,
                context_value=fresh,
                variable_values=variables,
                operation_name=name,
            )
            assert not result.errors, f"the executors report errors: {result.errors}"
            data = result.data
        finally:
            fresh.release()
        while len(connection.queries_log) > logged:
            connection.queries_log.pop()
        assert views._encode({"data": orjson.Fragment(text)}) == views._encode({"data": data}), (
            "sql_render differs from the executors"
        )
        RENDERER_USES[0] += 1
        return text

    monkeypatch.setattr(views, "_rendered", checked)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RENDERER_USES[0]:
        terminalreporter.write_line(
            f"sql_render answered (and matched the executors) {RENDERER_USES[0]} queries"
        )


@pytest.fixture(autouse=True)
def _clear_django_cache() -> Iterator[None]:
    django_cache.clear()
    yield
    django_cache.clear()


@pytest.fixture
def saleor(db: Any) -> Iterator[FakeSaleor]:
    """A registered Saleor whose JWKS holds the test key."""
    server = FakeSaleor()
    server.jwks = jwks_of(KID)
    SaleorInstance.objects.create(saleor_api_url=server.api_url, jwks=jwks_of(KID), app_id=APP_ID)
    yield server
    server.close()
    assert server.schema_errors == [], "the fake Saleor was given data its schema rejects"


class Mint:
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def __call__(
        self,
        user_id: str,
        *,
        token_type: str = "access",
        is_staff: bool = False,
        expires_in: int = 300,
        kid: str = KID,
        issuer: str | None = None,
        **claims: Any,
    ) -> str:
        """A token shaped like ``saleor/core/jwt.py`` makes them."""
        now = datetime.now(UTC)
        payload = {
            "iat": now,
            "owner": "saleor",
            "iss": issuer or self.issuer,
            "exp": now + timedelta(seconds=expires_in),
            "token": "user-jwt-token-key",
            "email": claims.pop("email", "customer@example.com"),
            "type": token_type,
            "user_id": user_id,
            "is_staff": is_staff,
            **claims,
        }
        return jwt.encode(payload, private_key(kid), algorithm="RS256", headers={"kid": kid})

    def thirdparty(self, user_id: str, permissions: list[str], app: str = APP_ID, **kw: Any) -> str:
        return self(
            user_id,
            token_type="thirdparty",
            is_staff=True,
            app=app,
            permissions=permissions,
            user_permissions=permissions,
            **kw,
        )


@pytest.fixture
def mint(saleor: FakeSaleor) -> Mint:
    return Mint(saleor.api_url)


def staff_answer(user_id: str, permissions: list[str]) -> Callable[..., Any]:
    """What Saleor answers to ``CrmStaffPermissions`` for that staff member."""

    def root(query: str, variables: dict[str, Any], headers: dict[str, str]) -> Any:
        assert "CrmStaffPermissions" in query
        return {
            "me": {
                "id": user_id,
                "userPermissions": [{"code": p, "name": p} for p in permissions],
            }
        }

    return root


GqlResult = tuple[int, dict[str, Any]]


@pytest.fixture
def gql(client: Any) -> Callable[..., GqlResult]:
    def post(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        path: str = "/graphql/",
    ) -> GqlResult:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        response = client.post(
            path,
            data=json.dumps({"query": query, "variables": variables or {}}),
            content_type="application/json",
            headers=sent,
        )
        return response.status_code, response.json()

    return post


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["exception"]["code"] for e in body.get("errors", [])]


# -- projection rows -----------------------------------------------------------------------


def user_gid(n: int) -> str:
    return to_global_id("User", n)


def make_customer(n: int, **fields: Any) -> Customer:
    defaults = {
        "saleor_user_id": user_gid(n),
        "email": f"customer{n}@example.com",
        "first_name": f"First{n}",
        "last_name": f"Last{n}",
    }
    defaults.update(fields)
    return Customer.objects.create(**defaults)


def make_order(
    customer: Customer | None,
    n: int,
    *,
    lines: int = 2,
    channel: str = "default-channel",
    status: str = OrderStatus.FULFILLED,
    currency: str = "USD",
    created: datetime | None = None,
) -> Order:
    created = created or datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=n)
    order = Order.objects.create(
        saleor_order_id=to_global_id("Order", f"00000000-0000-0000-0000-{n:012d}"),
        number=str(n),
        customer=customer,
        saleor_user_id=customer.saleor_user_id or "" if customer else "",
        user_email=customer.email if customer else f"guest{n}@example.com",
        channel_id=to_global_id("Channel", 1 if channel == "default-channel" else 2),
        channel_slug=channel,
        currency=currency,
        status=status,
        total_gross=Decimal("30.000") * lines,
        total_net=Decimal("25.000") * lines,
        total_charged=Decimal("30.000") * lines,
        created_at=created,
        paid_at=created,
    )
    for i in range(lines):
        OrderLine.objects.create(
            order=order,
            saleor_line_id=to_global_id("OrderLine", f"{n}-{i}"),
            product_id=to_global_id("Product", 100 + i),
            variant_id=to_global_id("ProductVariant", 1000 + i),
            product_name=f"Product {100 + i}",
            variant_name="M",
            sku=f"SKU-{100 + i}",
            quantity=i + 1,
            unit_price_gross=Decimal("30.000") / (i + 1),
            unit_price_net=Decimal("25.000") / (i + 1),
            total_price_gross=Decimal("30.000"),
        )
    return order


def make_stats(customer: Customer, channel: str = "default-channel", **fields: Any) -> Any:
    defaults = {
        "channel_id": to_global_id("Channel", 1),
        "channel_slug": channel,
        "currency": "USD",
        "order_count": 2,
        "total_spent": Decimal("120.000"),
        "total_refunded": Decimal("0"),
    }
    defaults.update(fields)
    return CustomerChannelStats.objects.create(customer=customer, **defaults)


def now_ts() -> float:
    return time.time()
