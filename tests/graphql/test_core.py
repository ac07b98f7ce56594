"""The framework every domain builds on: mutations, limits, transport, plugin route."""

from __future__ import annotations

import enum
import json
from typing import Any

import graphene
import pytest
from django.test import override_settings

from saleor_crm_plugin.core.auth import Requester
from saleor_crm_plugin.core.errors import CrmError, CrmValidationError
from saleor_crm_plugin.graphql.core.context import GraphQLContext
from saleor_crm_plugin.graphql.core.dataloaders import DataLoader
from saleor_crm_plugin.graphql.core.limits import check_limits, measure
from saleor_crm_plugin.graphql.core.mutations import BaseMutation, error_type
from saleor_crm_plugin.graphql.core.permissions import login_required, permission_required
from saleor_crm_plugin.permissions import SaleorPermission
from tests.graphql.conftest import error_codes, make_customer, user_gid

# Mutations run in a transaction, so even the toy schema needs the database.
pytestmark = pytest.mark.django_db


class ToyErrorCode(enum.StrEnum):
    """Codes of the toy domain."""

    INVALID = "INVALID"
    TOO_MANY = "TOO_MANY"


ToyError = error_type("ToyError", ToyErrorCode)
CALLS: list[Any] = []


class ToyAdjust(BaseMutation):
    value = graphene.Int()

    class Arguments:
        points = graphene.Int(required=True)

    class Meta:
        description = "Adjust the toy."
        permissions = (SaleorPermission.MANAGE_USERS,)
        error_type_class = ToyError

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, points: int) -> Any:
        if points == 13:
            make_customer(13)  # a write, then a business-rule failure
            raise CrmError("Unlucky.", code=ToyErrorCode.INVALID, field="points")
        if points < 0:
            raise CrmError(
                "Points must not be negative.", code=ToyErrorCode.INVALID, field="points"
            )
        if points > 100:
            raise CrmValidationError(
                [
                    CrmError("Too many.", code=ToyErrorCode.TOO_MANY, field="points"),
                    CrmError("Ask a manager.", code=ToyErrorCode.INVALID),
                ]
            )
        CALLS.append(points)
        return cls(value=points)


class ToyRedeem(BaseMutation):
    ok = graphene.Boolean()

    class Meta:
        login_required = True
        error_type_class = ToyError

    @classmethod
    def perform_mutation(cls, root: Any, info: Any) -> Any:
        return cls(ok=True)


class ToyQuery(graphene.ObjectType):
    secret = graphene.String()
    mine = graphene.String()

    @staticmethod
    @permission_required(SaleorPermission.MANAGE_ORDERS)
    def resolve_secret(root: Any, info: Any) -> str:
        return "s"

    @staticmethod
    @login_required
    def resolve_mine(root: Any, info: Any) -> str:
        return info.context.requester.user_id


class ToyMutation(graphene.ObjectType):
    toy_adjust = ToyAdjust.Field()
    toy_redeem = ToyRedeem.Field()


TOY_SCHEMA = graphene.Schema(query=ToyQuery, mutation=ToyMutation)


def run(document: str, requester: Requester | None = None) -> Any:
    context = GraphQLContext(requester=requester or Requester())
    return TOY_SCHEMA.execute(document, context_value=context)


STAFF = Requester(kind="staff", user_id="VXNlcjo5", permissions=frozenset({"MANAGE_USERS"}))
CUSTOMER = Requester(kind="customer", user_id="VXNlcjox")


def test_mutation_returns_domain_errors_with_field_and_code():
    CALLS.clear()
    result = run(
        "mutation { toyAdjust(points: -1) { value errors { field code message } } }", STAFF
    )
    assert result.errors is None
    assert result.data == {
        "toyAdjust": {
            "value": None,
            "errors": [
                {"field": "points", "code": "INVALID", "message": "Points must not be negative."}
            ],
        }
    }
    assert CALLS == []


def test_mutation_reports_every_validation_error():
    result = run("mutation { toyAdjust(points: 101) { errors { field code } } }", STAFF)
    assert result.data["toyAdjust"]["errors"] == [
        {"field": "points", "code": "TOO_MANY"},
        {"field": None, "code": "INVALID"},
    ]


def test_mutation_success_has_empty_errors():
    CALLS.clear()
    result = run("mutation { toyAdjust(points: 5) { value errors { code } } }", STAFF)
    assert result.data == {"toyAdjust": {"value": 5, "errors": []}}
    assert CALLS == [5]


@pytest.mark.parametrize("requester", [Requester(), CUSTOMER])
def test_mutation_permissions_are_checked_before_anything_runs(requester):
    CALLS.clear()
    result = run("mutation { toyAdjust(points: 5) { value } }", requester)
    assert result.data == {"toyAdjust": None}
    assert str(result.errors[0]) == (
        "To access this path, you need one of the following permissions: MANAGE_USERS"
    )
    assert CALLS == []


def test_login_required_mutation():
    assert run("mutation { toyRedeem { ok } }").data == {"toyRedeem": None}
    assert run("mutation { toyRedeem { ok } }", CUSTOMER).data == {"toyRedeem": {"ok": True}}


def test_error_enum_and_permissions_are_in_the_schema():
    printed = str(TOY_SCHEMA)
    assert "enum ToyErrorCode {\n  INVALID\n  TOO_MANY\n}" in printed
    assert "errors: [ToyError!]!" in printed
    assert "Requires one of the following permissions: MANAGE_USERS." in (
        TOY_SCHEMA.get_mutation_type().fields["toyAdjust"].description
    )


def test_mutation_without_error_type_is_a_programming_error():
    with pytest.raises(TypeError, match="error_type_class is required"):

        class Broken(BaseMutation):
            class Meta:
                description = "no errors"


def test_resolver_decorators():
    assert run("{ secret }", STAFF).data == {"secret": None}
    orders = Requester(kind="app", permissions=frozenset({"MANAGE_ORDERS"}))
    assert run("{ secret }", orders).data == {"secret": "s"}
    assert run("{ mine }").data == {"mine": None}
    assert run("{ mine }", CUSTOMER).data == {"mine": "VXNlcjox"}


def test_dataloader_is_shared_per_request_and_batches():
    batches: list[list[int]] = []

    class Double(DataLoader[int, int]):
        context_key = "test_double"

        def batch_load(self, keys: list[int]) -> list[int]:
            batches.append(list(keys))
            return [k * 2 for k in keys]

    context = GraphQLContext()
    assert Double(context) is Double(context)
    assert Double(GraphQLContext()) is not Double(context)

    class Query(graphene.ObjectType):
        double = graphene.Int(n=graphene.Int())

        @staticmethod
        def resolve_double(root: Any, info: Any, n: int) -> Any:
            return Double(info.context).load(n)

    result = graphene.Schema(query=Query).execute(
        "{ a: double(n: 1) b: double(n: 2) c: double(n: 1) }", context_value=GraphQLContext()
    )
    assert result.data == {"a": 2, "b": 4, "c": 2}
    assert batches == [[1, 2]]


def _loader_scenario(make_loader: Any) -> list[Any]:
    """Loads in promise chains, nested and failing, as graphql-core's executor makes them:
    what happens, in order (batches, values seen by callbacks, rejections)."""
    from promise import Promise

    events: list[Any] = []
    a, b, c = (make_loader(name, events) for name in "abc")

    def chain(value: Any) -> Any:
        events.append(("value", value))
        return Promise.all([b.load(value + 1), a.load(value + 2)])

    def run(_: Any) -> Any:
        loads = [
            a.load(1).then(chain),
            a.load(2).then(chain),
            b.load(1),
            a.load(1),
            Promise.resolve(None).then(lambda _: a.load(10)).then(chain),
            c.load(99).then(None, lambda error: events.append(("rejected", str(error))) or -1),
            b.load(7).then(None, lambda error: events.append(("rejected", str(error))) or -2),
            a.load(7).then(lambda v: Promise.resolve(v).then(chain)),
        ]
        return Promise.all(loads)

    result = Promise.resolve(None).then(run).get()
    events.append(("result", result))
    # A failed batch is forgotten: the key is asked again.
    events.append(("again", c.load(99).then(None, lambda error: str(error)).get()))
    return events


def test_dataloader_batches_and_settles_as_promises_dataloader():
    """``DataLoader.load`` queues the same jobs as promise's own loader: the same batches,
    the same values in the same order, failures rejected and forgotten alike."""
    from promise import Promise
    from promise.dataloader import DataLoader as PromiseLoader

    def batch(name: str, events: list[Any], keys: list[int]) -> list[Any]:
        events.append((name, list(keys)))
        if 99 in keys:
            raise ValueError(f"{name} cannot load 99")
        return [ValueError("seven") if k == 7 and name == "b" else k * 10 for k in keys]

    def theirs(name: str, events: list[Any]) -> Any:
        def batch_load_fn(keys: list[int]) -> Promise:
            return Promise.resolve(batch(name, events, keys))

        return PromiseLoader(batch_load_fn)

    context = GraphQLContext()

    def ours(name: str, events: list[Any]) -> Any:
        class Loader(DataLoader[int, Any]):
            context_key = f"test_scenario_{name}"

            def batch_load(self, keys: list[int]) -> list[Any]:
                return batch(name, events, keys)

        return Loader(context)

    expected = _loader_scenario(theirs)
    assert ("rejected", "c cannot load 99") in expected and ("rejected", "seven") in expected
    assert ("again", "c cannot load 99") in expected and len(expected) > 10
    assert _loader_scenario(ours) == expected


def test_dataloader_refuses_a_batch_of_the_wrong_length():
    class Short(DataLoader[int, int]):
        context_key = "test_short"

        def batch_load(self, keys: list[int]) -> list[int]:
            return keys[1:]

    from promise import Promise

    loader = Short(GraphQLContext())
    with pytest.raises(TypeError, match="one value per key"):
        Promise.resolve(None).then(lambda _: Promise.all([loader.load(1), loader.load(2)])).get()
    with pytest.raises(TypeError):
        loader.load(None)


# -- limits -----------------------------------------------------------------------------------


def test_depth_and_complexity_are_measured():
    from graphql import parse

    depth, cost = measure(
        parse("{ me { orders(first: 10) { edges { node { number lines { sku } } } } } }")
    )
    assert depth == 6
    # me + orders + 10 x (edges + node + number + lines + sku)
    assert cost == 2 + 10 * 5


def test_complexity_uses_variables_and_fragments():
    from graphql import parse

    document = parse(
        "query($n: Int) { me { orders(first: $n) { ...O } } } "
        "fragment O on CrmOrderCountableConnection { totalCount }"
    )
    assert measure(document, {"n": 50}) == (3, 2 + 50)


def test_introspection_is_exempt():
    from graphql import parse
    from graphql.utils.introspection_query import introspection_query

    assert check_limits(parse(introspection_query)) == []


@override_settings(CRM_GRAPHQL_MAX_DEPTH=3)
def test_too_deep_document_is_refused(db, gql):
    status, body = gql("{ me { orders(first: 1) { edges { node { number } } } } }")
    assert status == 400
    assert body["errors"][0]["message"] == "The query exceeds the maximum depth of 3 (it has 5)."


@override_settings(CRM_GRAPHQL_MAX_COMPLEXITY=100)
def test_too_costly_document_is_refused(db, gql):
    status, body = gql("{ me { orders(first: 100) { edges { node { number } } } } }")
    assert status == 400
    assert body["errors"][0]["message"].startswith("The query exceeds the maximum cost of 100")


# -- transport --------------------------------------------------------------------------------


def test_syntax_and_validation_errors_are_400(db, gql):
    status, body = gql("{ me { ")
    assert status == 400 and "Syntax Error" in body["errors"][0]["message"]
    status, body = gql("{ me { nope } }")
    assert status == 400
    assert body["errors"][0]["message"] == 'Cannot query field "nope" on type "CrmCustomer".'


def test_bad_request_bodies(db, client):
    response = client.post("/graphql/", data="{", content_type="application/json")
    assert (response.status_code, response.json()["errors"][0]["message"]) == (
        400,
        "The request body must be JSON.",
    )
    response = client.post(
        "/graphql/", data=json.dumps({"query": ""}), content_type="application/json"
    )
    assert response.status_code == 400


def test_batched_operations(saleor, mint, client):
    make_customer(1)
    response = client.post(
        "/graphql/",
        data=json.dumps([{"query": "{ me { email } }"}, {"query": "{ me { firstName } }"}]),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint(user_gid(1))}"},
    )
    assert response.json() == [
        {"data": {"me": {"email": "customer1@example.com"}}},
        {"data": {"me": {"firstName": "First1"}}},
    ]


def test_get_is_refused_outside_debug(db, client):
    response = client.get("/graphql/")
    assert response.status_code == 405
    assert response["Allow"] == "POST, OPTIONS"


@override_settings(DEBUG=True)
def test_get_serves_graphiql_in_debug(db, client):
    response = client.get("/graphql/")
    assert response.status_code == 200 and b"GraphiQL" in response.content


@override_settings(CRM_GRAPHQL_ALLOWED_ORIGINS=["https://*.shop.example"])
def test_cors_preflight_for_allowed_origins(db, client):
    response = client.options("/graphql/", headers={"Origin": "https://www.shop.example"})
    assert response["Access-Control-Allow-Origin"] == "https://www.shop.example"
    assert "Authorization" in response["Access-Control-Allow-Headers"]
    response = client.options("/graphql/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response


def test_plugin_route_serves_the_same_schema(saleor, mint, rf):
    from saleor_crm_plugin.plugin_http import handle_plugin_request

    make_customer(1)
    request = rf.post(
        "/plugins/global/saleor-crm-plugin/graphql/",
        data=json.dumps({"query": "{ me { email } }"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint(user_gid(1))}"},
    )
    response = handle_plugin_request(request, "/graphql/", None)
    assert json.loads(response.content) == {"data": {"me": {"email": "customer1@example.com"}}}
    get = handle_plugin_request(rf.get("/x"), "/graphql", None)
    assert get.status_code == 405
    assert handle_plugin_request(rf.get("/x"), "/other", "previous") == "previous"


def test_plugin_route_refuses_expired_tokens(saleor, mint, rf):
    from saleor_crm_plugin.plugin_http import handle_plugin_request

    request = rf.post(
        "/plugins/global/saleor-crm-plugin/graphql/",
        data=json.dumps({"query": "{ me { email } }"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint(user_gid(1), expires_in=-1)}"},
    )
    response = handle_plugin_request(request, "/graphql/", None)
    assert response.status_code == 401
    assert error_codes(json.loads(response.content)) == ["ExpiredSignatureError"]


@pytest.fixture
def plugin_module():
    import importlib

    from tests.plugin import saleor_stub

    saleor_stub.install()
    try:
        yield importlib.import_module("saleor_crm_plugin.plugin")
    finally:
        saleor_stub.uninstall()


def test_saleor_plugin_webhook_serves_graphql(plugin_module, saleor, mint, rf):
    make_customer(1)
    plugin = plugin_module.CRMPlugin(configuration=[], active=True)
    request = rf.post(
        "/plugins/global/saleor-crm-plugin/graphql/",
        data=json.dumps({"query": "{ me { email } }"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint(user_gid(1))}"},
    )
    response = plugin.webhook(request, "/graphql/", None)
    assert json.loads(response.content) == {"data": {"me": {"email": "customer1@example.com"}}}


def test_entity_batches_count_each_representation():
    from graphql import parse

    document = parse(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { crm { email } } } }"
    )
    assert measure(document, {"r": [{}] * 40}) == (3, 1 + 40 * 2)


def test_failed_mutation_rolls_back_its_writes(db):
    from saleor_crm_plugin.customers.models import Customer

    result = run("mutation { toyAdjust(points: 13) { errors { code } } }", STAFF)
    assert result.data == {"toyAdjust": {"errors": [{"code": "INVALID"}]}}
    assert not Customer.objects.filter(saleor_user_id=user_gid(13)).exists()


def _reference_cursor(values: list[Any]) -> str:
    """``encode_cursor`` as it was written: base64 of ``json.dumps``, datetimes as their
    ``isoformat()``."""
    import base64
    from datetime import datetime

    from saleor_crm_plugin.graphql.core.connection import _encode_value

    encoded = [v.isoformat() if isinstance(v, datetime) else _encode_value(v) for v in values]
    return base64.b64encode(json.dumps(encoded).encode()).decode()


def test_cursors_are_encoded_as_json_dumps_encodes_them():
    """The cursor of strings and ints written without ``json.dumps`` is its text exactly,
    and any other value still goes through it."""
    import random
    from datetime import UTC, datetime, timedelta, timezone
    from decimal import Decimal

    from saleor_crm_plugin.graphql.core.connection import decode_cursor, encode_cursor

    rng = random.Random(5)
    texts = [
        "",
        "a",
        'quo"te',
        "back\\slash",
        "tab\tnew\nline",
        "\x00\x1f\x7f",
        "é",
        "日本",
        "\U0001f600",
        "\ud800",
        "</script>",
        "2026-01-02T03:04:05+00:00",
    ]
    ints = [0, 1, -1, 2**31, -(2**63), 2**64 + 3, 10**40]
    others = [
        None,
        True,
        False,
        1.5,
        float("nan"),
        float("inf"),
        Decimal("1.230"),
        datetime(2026, 1, 2, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=-3))),
        [1, "x"],
        {"a": 1},
    ]
    # Naive and UTC datetimes (written by orjson) of every year width, with and without
    # microseconds; another zone (``isoformat``).
    datetimes = [
        datetime(year, 1 + n % 12, 1 + n % 28, n % 24, n % 60, n % 60, micro, tzinfo=zone)
        for n, year in enumerate((1, 9, 10, 99, 100, 999, 1000, 2026, 9999))
        for micro in (0, 1, 600, 999_999)
        for zone in (UTC, None, timezone(timedelta(hours=5, minutes=30)))
    ]
    cases: list[list[Any]] = [[], [1], ["x"], *([t, n] for t in texts for n in ints)]
    cases += [[d, n] for d in datetimes for n in (1, 2**40)]
    pool = texts + ints + others + datetimes
    for _ in range(2_000):
        cases.append([rng.choice(pool) for _ in range(rng.randint(1, 4))])
    for values in cases:
        assert encode_cursor(values) == _reference_cursor(values), values
    created = datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)
    assert decode_cursor(encode_cursor([created, 42]), 2) == [created.isoformat(), 42]


def test_cursor_values_read_each_orderings_fields():
    """``cursor_values`` remembers a tuple ordering's attribute names; a list ordering and
    other orderings read theirs as before."""
    from types import SimpleNamespace

    from saleor_crm_plugin.graphql.core.connection import cursor_values

    item = SimpleNamespace(created_at=1, pk=2, number="3")
    assert cursor_values(item, ("-created_at", "-pk")) == [1, 2]
    assert cursor_values(item, ("-created_at", "-pk")) == [1, 2]
    assert cursor_values(item, ("number", "-pk")) == ["3", 2]
    assert cursor_values(item, ["pk", "-number"]) == [2, "3"]
