"""A request leaves no reference cycles behind: what it loaded is freed by reference counting
the moment the view returns, so the cyclic collector never has to walk and free it."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models import Model

from saleor_crm_plugin.graphql.core.context import GraphQLContext
from saleor_crm_plugin.graphql.core.dataloaders import DataLoader
from tests.graphql.conftest import user_gid
from tests.graphql.test_customer_360 import CUSTOMER_360, shopper  # noqa: F401


@pytest.fixture
def cyclic_garbage() -> Iterator[None]:
    """Automatic collection off, and every unreachable object a collection finds kept in
    ``gc.garbage`` (read by ``_collected``) instead of freed."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.collect()
        gc.garbage.clear()
        gc.enable()


def _collected() -> list[Any]:
    """Our objects among what a collection would have freed (the test client keeps cycles
    of its own)."""
    gc.collect()
    found = [o for o in gc.garbage if isinstance(o, Model | GraphQLContext | DataLoader)]
    gc.garbage.clear()
    return found


def _post(client: Any, token: str, body: Any) -> dict[str, Any]:
    response = client.post(
        "/graphql/",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content
    return json.loads(response.content)


# The lean executor's path, graphql-core's (introspection on the root query is left to it),
# and a batch of both.
FALLBACK_360 = CUSTOMER_360.replace("me {", "__schema { queryType { name } } me {", 1)


@pytest.mark.parametrize(
    "body",
    [
        {"query": CUSTOMER_360, "variables": {"first": 2}},
        {"query": FALLBACK_360, "variables": {"first": 2}},
        [
            {"query": CUSTOMER_360, "variables": {"first": 3}},
            {"query": FALLBACK_360, "variables": {"first": 1}},
        ],
    ],
    ids=["lean executor", "graphql-core", "batch"],
)
def test_customer_360_leaves_no_cycles(saleor, mint, client, shopper, cyclic_garbage, body):  # noqa: F811
    token = mint(user_gid(1))
    answer = _post(client, token, body)
    answers = answer if isinstance(answer, list) else [answer]
    for one in answers:
        assert "errors" not in one, one
        assert one["data"]["me"]["orders"]["edges"][0]["node"]["lines"], one
    assert _collected() == []


def test_the_check_sees_a_cycle(db, shopper, cyclic_garbage):  # noqa: F811
    """Without ``release`` the context and its loaders hold each other: the check above
    would find them."""
    from saleor_crm_plugin.graphql.customers.dataloaders import CustomerByUserIdLoader

    context = GraphQLContext()
    CustomerByUserIdLoader(context)
    del context
    assert any(isinstance(o, GraphQLContext) for o in _collected())
