"""Federation v1: the subgraph SDL composes with Saleor's own graph (tests/contract/schema.graphql).

Saleor 3.23 declares ``User @key(fields: "id")``, ``Product @key(fields: "id channel")`` and
``Order @key(fields: "id")`` (``saleor/graphql/.../types.py``, ``@federated_entity``); its printed
schema lists them in ``union _Entity``. We check what a v1 gateway checks when composing: key
fields exist on Saleor's type with the same types, added fields do not collide, shared value
types are identical and root fields are unique; then we build the composed graph and validate a
query that crosses both subgraphs.
"""

from __future__ import annotations

import copy

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from graphql import parse, validate
from graphql.language import ast
from graphql.language.printer import print_ast
from graphql.type.definition import GraphQLObjectType, GraphQLScalarType, GraphQLUnionType
from graphql.utils.extend_schema import extend_schema

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.graphql.api import schema
from saleor_crm_plugin.graphql.core.federation import federation_sdl
from tests.captures import saleor_schema
from tests.graphql.conftest import make_customer, make_order, user_gid

SALEOR_KEYS = {"User": "id", "Product": "id channel", "Order": "id"}
BUILTIN_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


def _sdl() -> ast.Document:
    return parse(federation_sdl(schema))


def _extensions() -> dict[str, ast.ObjectTypeDefinition]:
    return {
        d.definition.name.value: d.definition
        for d in _sdl().definitions
        if isinstance(d, ast.TypeExtensionDefinition)
    }


def _directive_args(node: ast.Node, name: str) -> dict[str, str] | None:
    for directive in node.directives or []:
        if directive.name.value == name:
            return {a.name.value: a.value.value for a in directive.arguments}
    return None


def _type_str(node: ast.Node) -> str:
    return print_ast(node)


def test_service_sdl_is_served(saleor, gql):
    status, body = gql("{ _service { sdl } }")
    assert status == 200
    sdl = body["data"]["_service"]["sdl"]
    assert sdl == federation_sdl(schema)
    assert 'extend type User @key(fields: "id") {\n  id: ID! @external' in sdl
    assert 'extend type Product @key(fields: "id channel")' in sdl
    assert "_entities" not in sdl and "_Service" not in sdl and "scalar _Any" not in sdl


def test_entities_keys_match_saleor():
    saleor = saleor_schema()
    entity_union = saleor.get_type("_Entity")
    assert isinstance(entity_union, GraphQLUnionType)
    saleor_entities = {t.name for t in entity_union.types}
    extensions = _extensions()
    entities = {n: d for n, d in extensions.items() if n not in {"Query", "Mutation"}}
    assert set(entities) == set(SALEOR_KEYS)
    for name, definition in entities.items():
        assert name in saleor_entities, f"{name} is not an entity in Saleor's graph"
        key = _directive_args(definition, "key")
        assert key == {"fields": SALEOR_KEYS[name]}
        saleor_type = saleor.get_type(name)
        ours = {f.name.value: f for f in definition.fields}
        for key_field in SALEOR_KEYS[name].split():
            assert _directive_args(ours[key_field], "external") == {}, f"{name}.{key_field}"
            assert _type_str(ours[key_field].type) == str(saleor_type.fields[key_field].type)
        for field_name, field in ours.items():
            if _directive_args(field, "external") is None:
                assert field_name not in saleor_type.fields, f"{name}.{field_name} collides"


def test_root_fields_do_not_collide_with_saleor():
    saleor = saleor_schema()
    for name, definition in _extensions().items():
        if name not in {"Query", "Mutation"}:
            continue
        root = saleor.get_query_type() if name == "Query" else saleor.get_mutation_type()
        collisions = {f.name.value for f in definition.fields} & set(root.fields)
        assert collisions == set(), f"{name} fields already defined by Saleor: {collisions}"


def test_shared_value_types_are_identical():
    saleor = saleor_schema()
    for definition in _sdl().definitions:
        if isinstance(definition, ast.TypeExtensionDefinition):
            continue
        name = definition.name.value
        theirs = saleor.get_type(name)
        if theirs is None:
            continue
        if isinstance(definition, ast.ScalarTypeDefinition):
            assert isinstance(theirs, GraphQLScalarType)
            continue
        assert name in {"PageInfo", "Node"}, f"{name} is also a Saleor type: prefix it (Crm...)"
        ours = {f.name.value: _type_str(f.type) for f in definition.fields}
        assert ours == {n: str(f.type) for n, f in theirs.fields.items()}, name


def composed_schema():
    """Saleor's graph extended by ours, as a gateway merges them."""
    saleor = saleor_schema()
    definitions = []
    for definition in _sdl().definitions:
        definition = copy.deepcopy(definition)
        if isinstance(definition, ast.TypeExtensionDefinition):
            inner = definition.definition
            inner.directives = []
            inner.fields = [f for f in inner.fields if _directive_args(f, "external") is None]
            for field in inner.fields:
                field.directives = []
            definitions.append(definition)
        elif saleor.get_type(definition.name.value) is None:
            definitions.append(definition)
    return extend_schema(saleor, ast.Document(definitions=definitions))


def test_subgraph_composes_with_saleor_and_crosses_both_graphs():
    composed = composed_schema()
    user = composed.get_type("User")
    assert isinstance(user, GraphQLObjectType) and "crm" in user.fields
    query = parse(
        """{ me { email crm { orderCount orders(first: 5) { edges { node {
             number lines { quantity product { name slug crm { stats { unitsSold } } } } } } } } }
           order(id: "x") { number crm { totalCharged { amount } } }
           customer(email: "a@b.c") { user { email dateJoined } } }"""
    )
    assert validate(composed, query) == []


def test_entities_resolve_users_in_one_batch(saleor, mint, gql):
    for n in range(1, 6):
        make_order(make_customer(n), n)
    staff = mint.thirdparty(user_gid(900), ["MANAGE_USERS", "MANAGE_ORDERS"])
    representations = ", ".join(
        f'{{__typename: "User", id: "{user_gid(n)}"}}' for n in [1, 2, 3, 4, 5, 404]
    )
    query = (
        f"{{ _entities(representations: [{representations}]) "
        "{ ... on User { id crm { email orders(first: 2) "
        "{ totalCount edges { node { number lines { sku } } } } } } } }"
    )
    gql(query, token=staff)
    with CaptureQueriesContext(connection) as queries:
        status, body = gql(query, token=staff)
    assert status == 200, body
    entities = body["data"]["_entities"]
    assert [e["id"] for e in entities] == [user_gid(n) for n in [1, 2, 3, 4, 5, 404]]
    assert [e["crm"] and e["crm"]["email"] for e in entities] == [
        *[f"customer{n}@example.com" for n in range(1, 6)],
        None,
    ]
    assert entities[2]["crm"]["orders"]["edges"][0]["node"]["number"] == "3"
    # customers, orders pages with counts (window functions), lines: constant in batch size.
    assert len(queries.captured_queries) == 3


def test_entities_resolve_orders_and_products(saleor, mint, gql):
    customer = make_customer(1)
    make_order(customer, 1)
    make_order(None, 2)
    order_id = to_global_id("Order", f"00000000-0000-0000-0000-{1:012d}")
    staff = mint.thirdparty(user_gid(900), ["MANAGE_ORDERS", "MANAGE_PRODUCTS"])
    # As a gateway sends them: representations in a variable.
    query = (
        "query($r: [_Any!]!) { _entities(representations: $r) { "
        "... on Order { crm { number customer { id } } } "
        "... on Product { id channel crm { stats { orderCount customerCount unitsSold } } } } }"
    )
    product_id = to_global_id("Product", 101)
    representations = [
        {"__typename": "Order", "id": order_id},
        {"__typename": "Product", "id": product_id, "channel": "default-channel"},
        {"__typename": "Product", "id": product_id, "channel": None},
    ]
    status, body = gql(query, {"r": representations}, token=staff)
    assert status == 200, body
    order, product_in_channel, product_everywhere = body["data"]["_entities"]
    assert order["crm"]["number"] == "1"
    # customer needs MANAGE_USERS, which this token lacks
    assert order["crm"]["customer"] is None
    assert body["errors"][0]["path"] == ["_entities", 0, "crm", "customer"]
    # Two sales of 2 units each (line 1 of each order), one of them by a known customer.
    assert product_in_channel["crm"]["stats"] == {
        "orderCount": 2,
        "customerCount": 1,
        "unitsSold": 4,
    }
    assert product_everywhere["channel"] is None


@pytest.mark.parametrize(
    ("representation", "message"),
    [
        ('{__typename: "Checkout", id: "x"}', "does not extend the type 'Checkout'"),
        ('{__typename: "Product", id: "x"}', "A Product representation needs channel."),
    ],
)
def test_bad_representations(saleor, gql, representation, message):
    _, body = gql(f"{{ _entities(representations: [{representation}]) {{ __typename }} }}")
    assert message in body["errors"][0]["message"]


def test_sdl_types_are_all_defined():
    document = _sdl()
    defined = (
        {
            d.name.value
            for d in document.definitions
            if not isinstance(d, ast.TypeExtensionDefinition)
        }
        | set(SALEOR_KEYS)
        | BUILTIN_SCALARS
    )

    def named(node):
        while not isinstance(node, ast.NamedType):
            node = node.type
        return node.name.value

    for definition in document.definitions:
        inner = getattr(definition, "definition", definition)
        for field in getattr(inner, "fields", None) or []:
            assert named(field.type) in defined, f"{inner.name.value}.{field.name.value}"


def test_order_and_product_entities_cost_constant_queries(saleor, mint, gql):
    customer = make_customer(1)
    for n in range(1, 7):
        make_order(customer, n)
    staff = mint.thirdparty(user_gid(900), ["MANAGE_ORDERS", "MANAGE_PRODUCTS"])
    query = (
        "query($r: [_Any!]!) { _entities(representations: $r) { "
        "... on Order { crm { number lines { sku } } } "
        "... on Product { crm { stats { unitsSold } } } } }"
    )

    def representations(n: int) -> list[dict]:
        orders = [
            {
                "__typename": "Order",
                "id": to_global_id("Order", f"00000000-0000-0000-0000-{k:012d}"),
            }
            for k in range(1, n + 1)
        ]
        products = [
            {
                "__typename": "Product",
                "id": to_global_id("Product", 100 + k),
                "channel": "default-channel",
            }
            for k in range(n)
        ]
        return orders + products

    gql(query, {"r": representations(1)}, token=staff)  # registered instance now cached
    counts = []
    for n in (1, 6):
        with CaptureQueriesContext(connection) as queries:
            status, body = gql(query, {"r": representations(n)}, token=staff)
        assert status == 200 and "errors" not in body, body
        counts.append(len(queries.captured_queries))
    # orders by Saleor id, their lines, product stats (one query per channel).
    assert counts == [3, 3]
