"""The lean query executor (``graphql/core/executor.py``) against graphql-core's own, on a small
schema that exercises what a document can contain. The whole suite also checks every query it
sends against graphql-core (``tests/conftest.py``); these tests cover the corners on purpose."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import graphene
import pytest
from graphql import parse, validate
from graphql.execution import execute
from promise import Promise
from promise.promise import async_instance

from saleor_crm_plugin.graphql.core.context import GraphQLContext
from saleor_crm_plugin.graphql.core.dataloaders import DataLoader
from saleor_crm_plugin.graphql.core.executor import (
    DocumentPlans,
    Unsupported,
    execute_query,
    ignores_info,
    money_of,
    or_none,
    shortcut,
)
from saleor_crm_plugin.graphql.core.types import money
from tests.graphql.conftest import make_customer, make_order, make_stats, user_gid

BATCHES: list[list[int]] = []


class ChildrenLoader(DataLoader[int, list[int]]):
    context_key = "test_children"

    def batch_load(self, keys: list[int]) -> list[list[int]]:
        BATCHES.append(sorted(keys))
        return [[key * 10 + i for i in range(3)] for key in keys]


Colour = graphene.Enum("Colour", [("RED", "red"), ("BLUE", "blue")])


class Shade(StrEnum):
    LIGHT = "light"


class Named(graphene.Interface):
    name = graphene.String(required=True)


class Cat(graphene.ObjectType):
    class Meta:
        interfaces = (Named,)

    lives = graphene.Int()


class Dog(graphene.ObjectType):
    class Meta:
        interfaces = (Named,)

    barks = graphene.Boolean()


class Pet(graphene.Union):
    class Meta:
        types = (Cat, Dog)


class Price(graphene.ObjectType):
    amount = graphene.Float(required=True)
    currency = graphene.String(required=True)


INFOS: list[Any] = []


class Node(graphene.ObjectType):
    number = graphene.Int(required=True)
    label = graphene.String()
    colour = graphene.Field(Colour)
    seen_at = graphene.DateTime()
    children = graphene.List(graphene.NonNull(lambda: Node), required=True)
    scaled = graphene.Int(factor=graphene.Int(default_value=2))
    broken = graphene.String()
    must = graphene.String(required=True)
    # Values the serializers change, or refuse: the lean executor's shortcuts must not apply.
    shade = graphene.String()
    int_of_bool = graphene.Int()
    big = graphene.Int()
    float_of_int = graphene.Float()
    id_of_int = graphene.ID()
    day = graphene.DateTime()
    unknown_colour = graphene.Field(Colour)
    maybe_children = graphene.List(lambda: Node)
    # Resolvers marked ``ignores_info``: called without a ResolveInfo by the lean executor.
    price = graphene.Field(Price, required=True)
    price_or_none = graphene.Field(Price)
    plain_label = graphene.String()
    plain_must = graphene.String(required=True)
    plain_broken = graphene.String()
    plain_deferred = graphene.Field(Price)
    plain_with_args = graphene.Int(factor=graphene.Int(default_value=3))
    # A resolver with a ``shortcut``: answered without info for even numbers.
    quick = graphene.String()
    # Objects of default-resolved leaves only (built inline), and values that need the
    # general walk: a serializer that converts, an object source, a missing required value.
    price_of_int = graphene.Field(Price, required=True)
    price_object = graphene.Field(Price)
    price_missing = graphene.Field(Price)

    @staticmethod
    def resolve_price_of_int(root: dict, info: Any) -> dict:
        return {"amount": 3, "currency": "EUR"}

    @staticmethod
    def resolve_price_object(root: dict, info: Any) -> Price:
        return Price(amount=1.25, currency="SEK")

    @staticmethod
    def resolve_price_missing(root: dict, info: Any) -> dict:
        return {"currency": "EUR"}

    @staticmethod
    def resolve_label(root: dict, info: Any) -> str | None:
        return None if root["number"] % 2 else f"n{root['number']}"

    @staticmethod
    def resolve_colour(root: dict, info: Any) -> str:
        return "red" if root["number"] % 2 else "blue"

    @staticmethod
    def resolve_children(root: dict, info: Any) -> Promise:
        loader = ChildrenLoader(info.context)
        return loader.load(root["number"]).then(lambda ns: [{"number": n} for n in ns])

    @staticmethod
    def resolve_scaled(root: dict, info: Any, factor: int) -> int:
        return root["number"] * factor

    @staticmethod
    def resolve_broken(root: dict, info: Any) -> str:
        raise ValueError("boom")

    @staticmethod
    def resolve_must(root: dict, info: Any) -> None:
        return None

    @staticmethod
    def resolve_shade(root: dict, info: Any) -> Shade:
        return Shade.LIGHT

    @staticmethod
    def resolve_int_of_bool(root: dict, info: Any) -> bool:
        return True

    @staticmethod
    def resolve_big(root: dict, info: Any) -> int:
        return 2**40

    @staticmethod
    def resolve_float_of_int(root: dict, info: Any) -> int:
        return 3

    @staticmethod
    def resolve_id_of_int(root: dict, info: Any) -> int:
        return root["number"]

    @staticmethod
    def resolve_day(root: dict, info: Any) -> date:
        return date(2026, 1, 2)

    @staticmethod
    def resolve_unknown_colour(root: dict, info: Any) -> str:
        return "green"

    @staticmethod
    def resolve_maybe_children(root: dict, info: Any) -> list[Any]:
        return [{"number": root["number"] + 1}, None, Promise.resolve({"number": 0})]

    @staticmethod
    @ignores_info
    def resolve_price(root: dict, info: Any) -> dict:
        INFOS.append(info)
        return {"amount": root["number"] / 4, "currency": "EUR"}

    @staticmethod
    @ignores_info
    def resolve_price_or_none(root: dict, info: Any) -> dict | None:
        return None if root["number"] % 2 else {"amount": 1.5, "currency": "USD"}

    @staticmethod
    @ignores_info
    def resolve_plain_label(root: dict, info: Any) -> str | None:
        return None if root["number"] % 2 else f"p{root['number']}"

    @staticmethod
    @ignores_info
    def resolve_plain_must(root: dict, info: Any) -> None:
        return None

    @staticmethod
    @ignores_info
    def resolve_plain_broken(root: dict, info: Any) -> str:
        raise ValueError("boom")

    @staticmethod
    @ignores_info
    def resolve_plain_deferred(root: dict, info: Any) -> Promise:
        return Promise.resolve({"amount": 2.0, "currency": "GBP"})

    @staticmethod
    @ignores_info
    def resolve_plain_with_args(root: dict, info: Any, factor: int) -> int:
        INFOS.append(info)
        return root["number"] * factor

    @staticmethod
    @shortcut(lambda root: f"q{root['number']}" if root["number"] % 2 == 0 else None)
    def resolve_quick(root: dict, info: Any) -> str:
        INFOS.append(info)
        return f"q{root['number']}"


class Query(graphene.ObjectType):
    node = graphene.Field(Node, number=graphene.Int(required=True))
    nodes = graphene.List(Node, numbers=graphene.List(graphene.Int))
    named = graphene.List(Named)
    pets = graphene.List(Pet)
    greeting = graphene.String(name=graphene.String(default_value="world"))
    now = graphene.DateTime()

    @staticmethod
    def resolve_node(root: Any, info: Any, number: int) -> dict:
        return {"number": number, "seen_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}

    @staticmethod
    def resolve_nodes(root: Any, info: Any, numbers: list[int] | None = None) -> Promise:
        return Promise.resolve([{"number": n} for n in numbers or [1, 2]])

    @staticmethod
    def resolve_named(root: Any, info: Any) -> list[Any]:
        return [Cat(name="Tom", lives=9), Dog(name="Rex", barks=True)]

    @staticmethod
    def resolve_pets(root: Any, info: Any) -> list[Any]:
        return [Dog(name="Rex", barks=False), Cat(name="Tom", lives=7)]

    @staticmethod
    def resolve_greeting(root: Any, info: Any, name: str) -> str:
        return f"hello {name}"


SCHEMA = graphene.Schema(query=Query, types=[Cat, Dog])


def run_both(query: str, variables: dict[str, Any] | None = None) -> tuple[Any, Any]:
    document = parse(query)
    assert not validate(SCHEMA, document)
    BATCHES.clear()
    lean = execute_query(SCHEMA, document, GraphQLContext(), variables or {}, None)
    lean_batches = list(BATCHES)
    BATCHES.clear()
    result = execute(SCHEMA, document, context_value=GraphQLContext(), variable_values=variables)
    assert not result.errors
    assert lean_batches == BATCHES, "the lean executor must batch exactly like graphql-core"
    return lean, result.data


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ node(number: 3) { number label colour seenAt scaled s5: scaled(factor: 5) } }", None),
        ("{ a: node(number: 1) { number } b: node(number: 2) { number __typename } }", None),
        (
            "query($n: [Int], $f: Int) { nodes(numbers: $n) { number scaled(factor: $f)"
            " children { number children { number label } } } }",
            {"n": [1, 2, 3], "f": 7},
        ),
        ("{ nodes { ...N children { ...N } } } fragment N on Node { number colour }", None),
        (
            "query($yes: Boolean!) { node(number: 4) { number label @include(if: $yes)"
            " colour @skip(if: $yes) ... on Node @include(if: $yes) { scaled } } }",
            {"yes": True},
        ),
        (
            "query($yes: Boolean!) { node(number: 4) { number label @include(if: $yes)"
            " colour @skip(if: $yes) } }",
            {"yes": False},
        ),
        (
            "{ named { __typename name ... on Cat { lives } ... on Dog { barks } }"
            " pets { ... on Dog { name barks } ... on Cat { __typename lives } } }",
            None,
        ),
        ('{ greeting g2: greeting(name: "you") }', None),
        ("{ now node(number: 1) { seenAt } }", None),
        (
            "{ node(number: 2) { shade intOfBool floatOfInt idOfInt day"
            " maybeChildren { number idOfInt maybeChildren { number } } } }",
            None,
        ),
        (
            "{ nodes(numbers: [1, 2]) { price { amount currency } priceOrNone { currency }"
            " plainLabel plainDeferred { amount } plainWithArgs p: plainWithArgs(factor: 5)"
            " children { price { amount } } } }",
            None,
        ),
        ("{ nodes(numbers: [1, 2, 4]) { quick q: quick children { quick } } }", None),
        (
            "{ nodes(numbers: [1, 2]) { price { currency amount a2: amount __typename }"
            " priceOfInt { amount currency } priceObject { amount currency }"
            " p: priceObject { currency } } }",
            None,
        ),
    ],
)
def test_same_data_as_graphql_core(query: str, variables: dict[str, Any] | None) -> None:
    lean, reference = run_both(query, variables)
    assert json.dumps(lean) == json.dumps(reference)


@pytest.mark.parametrize(
    "query",
    [
        "query($n: [Int], $f: Int) { nodes(numbers: $n) { number scaled(factor: $f)"
        " children { number scaled } } }",
        "query($n: [Int], $yes: Boolean!) { nodes(numbers: $n) { number"
        " label @include(if: $yes) colour @skip(if: $yes) } }",
    ],
)
def test_plans_shared_by_requests_follow_each_requests_variables(query: str) -> None:
    document = parse(query)
    plans = DocumentPlans(document)
    assert plans.shareable is ("@" not in query)
    for variables in (
        {"n": [1, 2], "f": 3, "yes": True},
        {"n": [5], "f": 10, "yes": False},
        {"n": [2, 4, 6], "f": None, "yes": True},
    ):
        lean = execute_query(SCHEMA, document, GraphQLContext(), variables, None, plans)
        reference = execute(
            SCHEMA, document, context_value=GraphQLContext(), variable_values=variables
        )
        assert not reference.errors
        assert json.dumps(lean) == json.dumps(reference.data)


def test_resolvers_that_ignore_info_get_none_only_from_the_lean_executor() -> None:
    document = parse("{ node(number: 2) { price { amount } plainWithArgs } }")
    INFOS.clear()
    execute_query(SCHEMA, document, GraphQLContext(), {}, None)
    # No info for the marked resolver; one with arguments keeps the general path.
    assert INFOS[0] is None and INFOS[1] is not None
    INFOS.clear()
    execute(SCHEMA, document, context_value=GraphQLContext())
    assert all(info is not None for info in INFOS)


def test_a_shortcut_answers_without_info_when_it_can() -> None:
    document = parse("{ nodes(numbers: [1, 2, 4]) { quick } }")
    INFOS.clear()
    lean = execute_query(SCHEMA, document, GraphQLContext(), {}, None)
    # Only node 1's answer needed the resolver (with a real info).
    assert len(INFOS) == 1 and INFOS[0].path == ["nodes", 0, "quick"]
    assert lean == {"nodes": [{"quick": "q1"}, {"quick": "q2"}, {"quick": "q4"}]}
    INFOS.clear()
    assert execute(SCHEMA, document, context_value=GraphQLContext()).data == lean
    assert len(INFOS) == 3


def test_dataloaders_batch_per_level() -> None:
    run_both("{ nodes(numbers: [1, 2, 3]) { children { children { number } } } }")
    document = parse("{ nodes(numbers: [1, 2, 3]) { children { children { number } } } }")
    BATCHES.clear()
    execute_query(SCHEMA, document, GraphQLContext(), {}, None)
    # One load per level, whatever the number of parents: 3 parents, then their 9 children.
    assert [len(batch) for batch in BATCHES] == [3, 9]


@pytest.mark.parametrize(
    "query",
    [
        "{ node(number: 1) { broken } }",  # a resolver raises
        "{ node(number: 1) { must } }",  # null in a non-null field
        "{ __schema { queryType { name } } }",  # introspection is graphql-core's job
        "{ node(number: 1) { children { broken } } }",  # an error below a deferred level
        "{ node(number: 1) { big } }",  # an Int beyond 32 bits
        "{ node(number: 1) { unknownColour } }",  # a value the enum does not list
        "{ node(number: 1) { maybeChildren { must } } }",  # null below a list
        "{ node(number: 1) { plainMust } }",  # null from a resolver that ignores info
        "{ node(number: 1) { plainBroken } }",  # a resolver that ignores info raises
        "{ node(number: 1) { priceMissing { currency amount } } }",  # null in a leaves-only object
    ],
)
def test_gives_up_where_graphql_core_reports_errors(query: str) -> None:
    document = parse(query)
    with pytest.raises(Unsupported):
        execute_query(SCHEMA, document, GraphQLContext(), {}, None)
    # The trampoline is left as found, so graphql-core still batches afterwards.
    assert not async_instance.is_tick_used
    assert not async_instance.normal_queue
    BATCHES.clear()
    result = execute(
        SCHEMA,
        parse("{ nodes(numbers: [1, 2]) { children { number } } }"),
        context_value=GraphQLContext(),
    )
    assert not result.errors and BATCHES == [[1, 2]]


class Item:
    """An attribute-read source (the compiled walk's case; ``Node`` reads dicts)."""

    @property
    def broken(self) -> int:
        raise AttributeError("computed from nothing")

    def __init__(self, number: int, **values: Any) -> None:
        self.number = number
        self.label = None if number % 2 else f"i{number}"
        self.shade = Shade.LIGHT if number == 3 else "plain"
        self.count = True if number == 5 else (2**40 if number == 7 else number)
        self.colour = "green" if number == 9 else ("red" if number % 2 else "blue")
        self.seen_at = datetime(2026, 1, 2, 3, 4, number, tzinfo=UTC)
        if number in (57, 59):  # another offset, a naive datetime: not the inline case
            zone = timezone(timedelta(hours=2)) if number == 57 else None
            self.seen_at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=zone)
        self.day = date(2026, 1, 2) if number == 11 else None
        self.must = None if number == 13 else "here"
        # ``money_of`` fields: a Decimal (the inline case), else what leaves it.
        self.cost_amount = {27: None, 29: 3, 31: 2.5}.get(number, Decimal(number) / 8)
        self.currency = {33: None, 35: Shade.LIGHT}.get(number, "EUR")
        # ``or_none`` fields: a str (the inline case, "" answered as null), else what leaves it.
        self.code_value = {41: "", 43: None, 45: 5, 47: Shade.LIGHT}.get(number, f"c{number}")
        if number == 49:
            del self.code_value  # the resolver raises AttributeError
        self.friend: Any = None
        self.pals: Any = []
        self.pals_required: Any = []
        self.buddies_read: Any = None
        self.__dict__.update(values)


COST_CALLS: list[int] = []


CURRENCY_CALLS: list[int] = []
BUDDY_CALLS: list[int] = []
CODE_CALLS: list[int] = []


def _cost_currency(root: Item) -> Any:
    CURRENCY_CALLS.append(root.number)
    if root.number == 37:
        raise ValueError("no currency")
    return root.currency


class ItemNode(graphene.ObjectType):
    """Every kind of field of a compiled walk (default-resolved leaves that pass, convert or
    not; resolvers without info, leaves and flat objects; the rest), each with values
    that leave the inline path."""

    number = graphene.Int(required=True)
    label = graphene.String()
    shade = graphene.String()
    count = graphene.Int()
    colour = graphene.Field(Colour)
    seen_at = graphene.DateTime()
    day = graphene.DateTime()
    must = graphene.String(required=True)
    price = graphene.Field(Price)
    plain = graphene.String()
    quick = graphene.String()
    kids = graphene.List(graphene.NonNull(lambda: ItemNode), required=True)
    # Default-resolved, but the source has no such attribute (graphene answers null).
    absent = graphene.String()
    broken = graphene.Int()
    # ``money_of`` resolvers: built from the amount and currency by the compiled walk.
    cost = graphene.Field(Price)
    cost_required = graphene.Field(Price, required=True)

    # ``or_none`` resolvers: the attribute read inline by the compiled walk when nullable.
    code = graphene.ID()
    code_text = graphene.String()
    code_required = graphene.ID(required=True)
    # Default-resolved objects and lists of objects (an edge's node, a connection's edges).
    friend = graphene.Field(lambda: ItemNode)
    pals = graphene.List(lambda: ItemNode)
    pals_required = graphene.List(graphene.NonNull(lambda: ItemNode), required=True)
    # A ``shortcut``'s list of objects (an order's lines read with its page).
    buddies = graphene.List(lambda: ItemNode)

    @staticmethod
    @shortcut(lambda root: root.buddies_read)
    def resolve_buddies(root: Item, info: Any) -> Any:
        BUDDY_CALLS.append(root.number)
        return root.buddies_read if root.buddies_read is not None else [Item(56)]

    @staticmethod
    @or_none("code_value")
    @ignores_info
    def resolve_code(root: Item, info: Any) -> Any:
        CODE_CALLS.append(root.number)
        return root.code_value or None

    @staticmethod
    @or_none("code_value")
    @ignores_info
    def resolve_code_text(root: Item, info: Any) -> Any:
        return root.code_value or None

    @staticmethod
    @or_none("code_value")
    @ignores_info
    def resolve_code_required(root: Item, info: Any) -> Any:
        return root.code_value or None

    @staticmethod
    @money_of("cost_amount", _cost_currency)
    @ignores_info
    def resolve_cost(root: Item, info: Any) -> Any:
        COST_CALLS.append(root.number)
        return money(root.cost_amount, _cost_currency(root))

    @staticmethod
    @money_of("cost_amount", _cost_currency)
    @ignores_info
    def resolve_cost_required(root: Item, info: Any) -> Any:
        return money(root.cost_amount, _cost_currency(root))

    @staticmethod
    @ignores_info
    def resolve_price(root: Item, info: Any) -> Any:
        if root.number == 15:
            return Promise.resolve({"amount": 2.0, "currency": "GBP"})
        if root.number == 17:
            return {"amount": 3, "currency": "EUR"}  # an int: Float's serializer converts
        if root.number == 19:
            return Price(amount=1.25, currency="SEK")
        if root.number == 21:
            return None
        if root.number == 23:
            return {"currency": "EUR"}  # amount missing: null in a non-null field
        return {"amount": root.number / 4, "currency": "EUR"}

    @staticmethod
    @ignores_info
    def resolve_plain(root: Item, info: Any) -> Any:
        if root.number == 25:
            raise ValueError("boom")
        return None if root.number % 2 else f"p{root.number}"

    @staticmethod
    @shortcut(lambda root: f"q{root.number}" if root.number % 2 == 0 else None)
    def resolve_quick(root: Item, info: Any) -> str:
        return f"q{root.number}"

    @staticmethod
    def resolve_kids(root: Item, info: Any) -> list[Item]:
        return [Item(root.number * 10), Item(root.number * 10 + 1)] if root.number < 10 else []


class ItemQuery(graphene.ObjectType):
    items = graphene.List(ItemNode, numbers=graphene.List(graphene.Int))

    @staticmethod
    def resolve_items(root: Any, info: Any, numbers: list[int]) -> list[Item]:
        return [_with_friends(Item(n)) for n in numbers]


def _with_friends(item: Item) -> Item:
    """``friend`` and ``pals`` by the item's number modulo 6: an object and a list of objects
    (the inline case) or what leaves it (null, a dict, a promise, a null item, a tuple)."""
    kind = item.number % 6
    child: Any = Item(51)
    pals: Any = [Item(52), Item(53)]
    if kind == 0:
        child, pals = None, []
    elif kind == 2:
        child, pals = {"number": 54, "must": "dict"}, [Item(52), None]
    elif kind == 3:
        child, pals = Promise.resolve(child), [Promise.resolve(Item(52)), child]
    elif kind == 4:
        pals = tuple(pals)
    elif kind == 5:
        pals = [{"number": 55, "must": "dict"}, Item(53)]
    item.friend = child
    item.pals = item.pals_required = pals
    item.buddies_read = None if kind == 0 else pals
    return item


ITEM_SCHEMA = graphene.Schema(query=ItemQuery)
ITEM_FIELDS = (
    "number label shade count colour seenAt day must plain quick price { amount currency } "
    "absent broken"
)


def _answers_as_graphql_core(query: str) -> None:
    """The lean executor gives graphql-core's data for ``query`` on ``ITEM_SCHEMA`` (with
    and without plans, twice each: the second run reuses the plans and their compiled
    walks), or ``Unsupported`` where graphql-core reports an error."""
    document = parse(query)
    assert not validate(ITEM_SCHEMA, document)
    result = execute(ITEM_SCHEMA, document, context_value=GraphQLContext())
    if result.errors:
        with pytest.raises(Unsupported):
            execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None)
        return
    for plans in (None, DocumentPlans(document)):
        for _ in range(2):
            lean = execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans)
            assert json.dumps(lean) == json.dumps(result.data)


@pytest.mark.parametrize(
    "numbers",
    [
        [1, 2, 4],
        [3],
        [5],
        [7],
        [9],
        [11],
        [13],
        [15],
        [17],
        [19],
        [21],
        [23],
        [25],
        [2, 3, 4, 17],
        [57, 59, 2],
    ],
)
def test_compiled_walks_answer_as_graphql_core(numbers: list[int]) -> None:
    """Objects read by attribute take their plan's compiled walk: the same data as
    graphql-core, or ``Unsupported`` where graphql-core reports an error."""
    query = (
        f"{{ items(numbers: {numbers}) {{ {ITEM_FIELDS} __typename kids {{ {ITEM_FIELDS} "
        f"kids {{ number }} }} }} }}"
    )
    _answers_as_graphql_core(query)


COST_SELECTIONS = (
    "cost { amount currency } costRequired { amount currency }",
    "cost { currency amount } costRequired { amount }",
    "cost { a: amount c: currency amount } costRequired { currency }",
    "cost { amount __typename } costRequired { amount ... on Price { currency } }",
    "cost { amount } c2: cost { currency } costRequired { amount currency }",
    "cost { a: amount c: currency } costRequired { x: amount }",
    "cost { amount amount } costRequired { amount currency currency }",
)


@pytest.mark.parametrize("selection", COST_SELECTIONS)
@pytest.mark.parametrize(
    "numbers", [[1, 2, 4], [27], [29], [31], [33], [35], [37], [2, 29, 3, 31, 4]]
)
def test_money_of_fields_answer_as_graphql_core(selection: str, numbers: list[int]) -> None:
    """``money_of`` resolvers answered inline by the compiled walk (a Decimal amount and a
    str currency) or through the resolver (null, an int, a float, a null or ``StrEnum``
    currency, a currency that raises): the same data as graphql-core, in the selection's
    key order, or ``Unsupported`` where graphql-core reports an error."""
    query = f"{{ items(numbers: {numbers}) {{ number {selection} kids {{ {selection} }} }} }}"
    _answers_as_graphql_core(query)


def test_money_of_takes_the_inline_path() -> None:
    """Once the first object's walk has settled the plan, Decimal amounts no longer call
    the resolver (nor ``money``): only the first item of the first request does."""
    document = parse("{ items(numbers: [1, 2, 3, 4]) { cost { amount currency } } }")
    plans = DocumentPlans(document)
    answer = {"items": [{"cost": {"amount": n / 8, "currency": "EUR"}} for n in (1, 2, 3, 4)]}
    COST_CALLS.clear()
    assert execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans) == answer
    assert COST_CALLS == [1]
    assert execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans) == answer
    assert COST_CALLS == [1]


def test_money_of_takes_the_inline_path_for_float_amounts() -> None:
    """A ``float`` amount (the customer 360's statement reads money-only amounts as
    ``float8``) is answered inline too, as the resolver answers it."""
    document = parse("{ items(numbers: [31, 31, 31]) { cost { amount currency } } }")
    plans = DocumentPlans(document)
    answer = {"items": [{"cost": {"amount": 2.5, "currency": "EUR"}}] * 3}
    COST_CALLS.clear()
    assert execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans) == answer
    assert execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans) == answer
    assert COST_CALLS == [31]
    result = execute(ITEM_SCHEMA, document, context_value=GraphQLContext())
    assert result.data == answer


def test_money_of_fields_sharing_a_currency_ask_it_once_per_object() -> None:
    """Two ``money_of`` fields with the same ``currency_of`` (a line's prices): one call
    per object once the plan is settled."""
    document = parse(
        "{ items(numbers: [1, 2, 3]) { cost { amount currency } costRequired { amount } } }"
    )
    plans = DocumentPlans(document)
    execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans)
    CURRENCY_CALLS.clear()
    lean = execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans)
    assert CURRENCY_CALLS == [1, 2, 3]
    result = execute(ITEM_SCHEMA, document, context_value=GraphQLContext())
    assert json.dumps(lean) == json.dumps(result.data)


@pytest.mark.parametrize("numbers", [[1, 2, 4], [41], [43], [45], [47], [49], [41, 2, 43, 45, 47]])
@pytest.mark.parametrize(
    "selection", ["code", "code codeText", "c: code code codeText", "code codeRequired"]
)
def test_or_none_fields_answer_as_graphql_core(selection: str, numbers: list[int]) -> None:
    """``or_none`` resolvers read inline (a str, "" answered as null) or through the
    resolver (null, an int, a ``StrEnum``, a missing attribute; a non-null field always):
    the same data as graphql-core, or ``Unsupported`` where graphql-core reports an error."""
    query = f"{{ items(numbers: {numbers}) {{ number {selection} kids {{ {selection} }} }} }}"
    _answers_as_graphql_core(query)


def test_or_none_takes_the_inline_path() -> None:
    """A str attribute is answered without calling the resolver; other values call it."""
    document = parse("{ items(numbers: [1, 41, 43, 2]) { code } }")
    CODE_CALLS.clear()
    lean = execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None)
    assert lean == {"items": [{"code": "c1"}, {"code": None}, {"code": None}, {"code": "c2"}]}
    assert CODE_CALLS == [43]


FRIEND_SELECTIONS = (
    "friend { number label }",
    "pals { number code }",
    "friend { number friend { number } } pals { number pals { number } }",
    "palsRequired { number must cost { amount } }",
    "f: friend { number } friend { must } p: pals { number } pals { must }",
    "buddies { number label }",
    "buddies { number buddies { number } } b: buddies { must }",
)


@pytest.mark.parametrize("selection", FRIEND_SELECTIONS)
@pytest.mark.parametrize(
    "numbers", [[1, 7, 13], [6], [2], [3], [4], [5], [1, 2, 3, 4, 5, 6, 7], [6, 1, 2, 7]]
)
def test_default_resolved_objects_answer_as_graphql_core(
    selection: str, numbers: list[int]
) -> None:
    """Default-resolved objects and lists of objects walked inline (kinds "object" and
    "objects") or through ``_Walker.value`` (null, dicts, promises, null items, tuples): the
    same data as graphql-core, or ``Unsupported`` where graphql-core reports an error."""
    query = f"{{ items(numbers: {numbers}) {{ number {selection} }} }}"
    _answers_as_graphql_core(query)


def test_default_resolved_objects_take_the_inline_path(monkeypatch: Any) -> None:
    """Once their plans are known, objects and lists of plain objects no longer go
    through ``_Walker.value``."""
    from saleor_crm_plugin.graphql.core import executor

    document = parse(
        "{ items(numbers: [1, 7, 6]) { number friend { number } pals { number } "
        "buddies { number } } }"
    )
    plans = DocumentPlans(document)
    first = execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans)
    seen: list[str] = []
    value = executor._Walker.value

    def spy(self: Any, parent_type: Any, response_name: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(response_name)
        return value(self, parent_type, response_name, *args, **kwargs)

    monkeypatch.setattr(executor._Walker, "value", spy)
    assert execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans) == first
    # Only item 6's null friend goes through ``_Walker.value`` (its empty pals do not).
    assert seen.count("friend") == 1 and "pals" not in seen
    assert first["items"][1]["pals"] == [{"number": 52}, {"number": 53}]
    # Item 6's shortcut gives None: its resolver (through ``_Walker.field``), the only one.
    assert seen.count("buddies") == 1
    BUDDY_CALLS.clear()
    assert execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans) == first
    assert BUDDY_CALLS == [6]
    assert first["items"][2]["buddies"] == [{"number": 56}]


def test_walks_read_attributes_by_name_or_by_getattr() -> None:
    """``_read``: an identifier is read as ``source.<name>`` (``getattr``'s default on
    ``AttributeError``); a keyword or a name that is no identifier through ``getattr``."""
    from saleor_crm_plugin.graphql.core.executor import _read

    names = ("label", "class", "not-a-name", None)
    assert _read(names, 0, "v", "D0") == [
        "    try:",
        "        v = source.label",
        "    except AttributeError:",
        "        v = D0",
    ]
    assert _read(names, 0, "v", None) == ["    v = source.label"]
    assert _read(names, 1, "v", "D1") == ["    v = getattr(source, A1, D1)"]
    assert _read(names, 2, "a", None) == ["    a = getattr(source, A2)"]
    assert _read(names, 3, "v", "D3") == ["    v = getattr(source, A3, D3)"]


def test_mutations_are_never_executed_here() -> None:
    class Mutation(graphene.ObjectType):
        noop = graphene.Boolean()

    schema = graphene.Schema(query=Query, mutation=Mutation)
    with pytest.raises(Unsupported):
        execute_query(schema, parse("mutation { noop }"), GraphQLContext(), {}, None)


def test_customer_360_takes_the_lean_path(
    monkeypatch: pytest.MonkeyPatch, saleor: Any, mint: Any, gql: Any
) -> None:
    """The storefront's hot query must not fall back (it would then cost twice)."""
    from saleor_crm_plugin.graphql import views

    customer = make_customer(1)
    for n in range(1, 4):
        make_order(customer, n)
    make_stats(customer, order_count=3)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fell back to graphql-core")

    monkeypatch.setattr(views, "execute", refuse)
    status, body = gql(
        "{ me { email orderCount channelStats { currency totalSpent { amount } }"
        " orders(first: 2) { totalCount edges { node { number status total { amount }"
        " lines { sku quantity unitPrice { amount } } } } } } }",
        token=mint(user_gid(1)),
    )
    assert status == 200 and "errors" not in body, body
    orders = body["data"]["me"]["orders"]
    assert orders["totalCount"] == 3
    assert [e["node"]["number"] for e in orders["edges"]] == ["3", "2"]
    assert [line["quantity"] for line in orders["edges"][0]["node"]["lines"]] == [1, 2]


def test_datetimes_are_answered_as_isoformat_writes_them() -> None:
    """``_isoformat`` (orjson for naive and UTC datetimes) against graphene's ``isoformat``."""
    import random

    from saleor_crm_plugin.graphql.core.executor import _isoformat

    rng = random.Random(3)
    zones = [None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-3, minutes=-30))]
    for _ in range(20_000):
        value = datetime(
            rng.choice([1, 9, 99, 999, 1000, 1970, 2025, 9999, rng.randint(1, 9999)]),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, 1, 999_999, rng.randint(0, 999_999)]),
            tzinfo=rng.choice(zones),
            fold=rng.randint(0, 1),
        )
        assert _isoformat(value) == value.isoformat()
        assert _isoformat(value) == graphene.DateTime.serialize(value)


def test_selection_memos_are_bounded_and_answer_as_worked_out() -> None:
    """``selection._Memo``: answers kept until the memo is full, then it starts again."""
    from saleor_crm_plugin.graphql.core.selection import _Memo

    memo: _Memo[int, str] = _Memo(3)
    for n in range(3):
        memo.put(n, str(n))
    assert memo.get(2) == "2" and len(memo) == 3
    memo.put(3, "3")
    assert dict(memo) == {3: "3"}
    assert memo.get(0) is None


def test_plans_ask_the_schema_for_its_query_type_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DocumentPlans`` keeps the query type: the second request of a document does not
    ask the schema again, and answers the same."""
    document = parse('{ greeting(name: "you") nodes(numbers: [1, 2]) { number } }')
    plans = DocumentPlans(document)
    asked: list[Any] = []
    get_query_type = SCHEMA.get_query_type

    def counting() -> Any:
        asked.append(1)
        return get_query_type()

    monkeypatch.setattr(SCHEMA, "get_query_type", counting)
    first = execute_query(SCHEMA, document, GraphQLContext(), {}, None, plans)
    assert plans.root_type is get_query_type() and len(asked) == 1
    assert execute_query(SCHEMA, document, GraphQLContext(), {}, None, plans) == first
    assert len(asked) == 1
    execute_query(SCHEMA, document, GraphQLContext(), {}, None)  # no plans: asked each time
    assert len(asked) == 2


def test_money_of_amount_only_and_amount_currency_selections_are_known_to_the_plan() -> None:
    """The selections the compiled walk writes as dict literals: the amount alone (its
    key) and the amount then the currency (their keys); any other stays a comprehension
    over ``money_keys`` (``test_money_of_fields_answer_as_graphql_core`` compares each
    with graphql-core)."""
    document = parse(
        "{ items(numbers: [1, 2]) { cost { a: amount c: currency } costRequired { x: amount }"
        " c3: cost { currency amount } } }"
    )
    plans = DocumentPlans(document)
    lean = execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans)
    assert lean == execute_query(ITEM_SCHEMA, document, GraphQLContext(), {}, None, plans)
    ((_, items),) = plans.roots[None]
    assert items.item_plan is not None
    fields = dict(items.item_plan)
    assert (fields["cost"].money_one, fields["cost"].money_two) == (None, ("a", "c"))
    assert (fields["costRequired"].money_one, fields["costRequired"].money_two) == ("x", None)
    assert (fields["c3"].money_one, fields["c3"].money_two) == (None, None)
    assert fields["c3"].money_keys == (("currency", False), ("amount", True))
    result = execute(ITEM_SCHEMA, document, context_value=GraphQLContext())
    assert json.dumps(lean) == json.dumps(result.data)
