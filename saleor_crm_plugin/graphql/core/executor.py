"""A lean executor for the common case of a query that resolves without errors.

graphql-core 2 spends ~10 µs of CPU per resolved field (a ``ResolveInfo``, argument coercion,
an executor call, several promise checks), so a customer 360 with ~350 fields costs more in the
executor than in SQL. This walker produces the same ``data`` for the same document: it uses
graphql-core's own field collection, argument and variable coercion and the schema's
``serialize`` functions, calls the same resolvers with the same ``ResolveInfo``, and keeps
DataLoader batching by completing deferred values level by level (every load of a level is
queued before the first one is awaited, as graphql-core's promise trampoline does).

It only knows success. Whenever anything would produce a GraphQL error (a resolver raising, a
rejected promise, null in a non-null field, a value a scalar refuses, an unexpected type,
introspection), it gives up with :class:`Unsupported` and the caller runs graphql-core's
executor from scratch, which reports the error exactly as before. That is sound because query
resolvers do not write (mutations never come here), so running one twice changes nothing; a
query that fails costs twice, one that succeeds (nearly all of them) several times less.
"""

from __future__ import annotations

import datetime
import keyword
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import orjson
from graphene.types.resolver import dict_or_attr_resolver
from graphql.execution.base import ResolveInfo
from graphql.execution.executors.sync import SyncExecutor
from graphql.execution.utils import ExecutionContext, collect_fields
from graphql.execution.values import get_argument_values
from graphql.language import ast
from graphql.pyutils.default_ordered_dict import DefaultOrderedDict
from graphql.type import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    GraphQLUnionType,
)
from promise import Promise, is_thenable
from promise.promise import async_instance

__all__ = [
    "Unsupported",
    "execute_query",
    "ignores_info",
    "money_amount",
    "money_of",
    "or_none",
    "shortcut",
]

_LEAF = (GraphQLScalarType, GraphQLEnumType)
_ABSTRACT = (GraphQLInterfaceType, GraphQLUnionType)
_NO_ARGS: dict[str, Any] = {}


_NON_NULL, _LIST, _LEAF_KIND, _OTHER = "non-null", "list", "leaf", "other"
_KINDS: dict[type, str] = {}
_THENABLE_TYPES: dict[type, bool] = {}
_MIN_INT, _MAX_INT = -2147483648, 2147483647


_IGNORES_INFO = "_crm_ignores_info"
_F = TypeVar("_F", bound=Callable[..., Any])


def ignores_info(resolver: _F) -> _F:
    """Mark a resolver that never reads its ``info`` argument (nor takes field arguments).

    The walker then calls it as ``resolver(source, None)``: building a ``ResolveInfo`` (11
    attributes) and the field's path costs more than a one-line resolver such as a Money
    amount, and a customer 360 has ~100 of them. graphql-core's executor (the fallback) still
    passes a real ``info``, so a marked resolver must give the same answer either way; a
    resolver that reads ``info`` must not be marked."""
    setattr(resolver, _IGNORES_INFO, True)
    return resolver


_SHORTCUT = "_crm_shortcut"


def shortcut(answer: Callable[[Any], Any]) -> Callable[[_F], _F]:
    """Mark a resolver (without field arguments) whose answer ``answer(source)`` often gives
    without ``info``: the walker calls ``answer(source)`` first and builds a ``ResolveInfo``
    for the resolver only when it returns ``None``. Whenever ``answer`` returns something,
    it must be what the resolver returns (graphql-core, the fallback, calls the resolver)."""

    def mark(resolver: _F) -> _F:
        setattr(resolver, _SHORTCUT, answer)
        return resolver

    return mark


_MONEY = "_crm_money"


def money_of(amount: str, currency_of: Callable[[Any], Any]) -> Callable[[_F], _F]:
    """Mark a Money resolver marked ``ignores_info`` that returns exactly
    ``types.money(getattr(root, amount), currency_of(root))``.

    A customer 360 resolves ~70 amounts: each cost the resolver, ``money`` and its dict,
    then the walk's copy of the selected keys. The compiled walk (``_maker``, kind "money")
    builds the selected keys from the Decimal and the currency directly when the amount is
    a ``Decimal`` and the currency a ``str``; anything else (null, another class, a
    ``currency_of`` that raises) goes through the resolver as before. graphql-core (the
    fallback) always calls the resolver, and tests compare the two."""

    def mark(resolver: _F) -> _F:
        setattr(resolver, _MONEY, (amount, currency_of))
        return resolver

    return mark


_OR_NONE = "_crm_or_none"


def money_amount(resolver: Any) -> str | None:
    """The amount attribute of a ``money_of`` resolver, else ``None``."""
    marked = getattr(resolver, _MONEY, None)
    return None if marked is None else marked[0]


def or_none(attname: str) -> Callable[[_F], _F]:
    """Mark a resolver marked ``ignores_info`` that returns exactly ``getattr(root,
    attname) or None`` (an optional Saleor id stored as ``""``, say).

    The compiled walk (kind "ornone") then reads the attribute itself when the field is
    nullable and the value is a ``str`` (the empty one answered as null), without calling
    the resolver: 30 calls a customer 360 for the lines' ``productId``. Anything else goes
    through the resolver as before; graphql-core (the fallback) always calls it."""

    def mark(resolver: _F) -> _F:
        setattr(resolver, _OR_NONE, attname)
        return resolver

    return mark


def _int32(value: int) -> int | None:
    # ``coerce_int`` of an ``int``: itself when it fits in 32 bits; ``None`` sends the value
    # down the generic path, where graphql-core's own serializer decides (and refuses).
    return value if _MIN_INT <= value <= _MAX_INT else None


_UTC = datetime.UTC


def _isoformat(value: datetime.datetime) -> str:
    """``value.isoformat()``, the string graphene's DateTime answers. For a naive or UTC
    datetime (what PostgreSQL's ``timestamptz`` gives) orjson writes the same RFC 3339 text
    (microseconds only when not zero, ``+00:00``; a test compares them over every year
    width) for about a fifth of the instructions: ``isoformat`` formats through
    ``PyUnicode_FromFormat``, ~6k instructions a call, 13 a customer 360. Other time zones
    keep ``isoformat``."""
    tzinfo = value.tzinfo
    if tzinfo is _UTC or tzinfo is None:
        return orjson.dumps(value)[1:-1].decode()
    return value.isoformat()


# The ``fast`` maps of Int and graphene's DateTime, given their own compiled-walk kinds.
_INT_LEAVES: dict[type, Any] = {int: _int32}
_DATETIME_LEAVES: dict[type, Any] = {datetime.datetime: _isoformat}


def _fast_leaves(leaf: Any) -> dict[type, Callable[[Any], Any] | None]:
    """What ``leaf.serialize`` does to the Python classes it meets most, as a map from the
    exact class to a converter (``None``: the value itself), so the walker can skip the call.
    Only exact classes: ``serialize`` turns a ``str`` subclass (a ``StrEnum``) into something
    else than itself, so subclasses keep taking the generic path, as does every class not
    listed. A converter returning ``None`` also means "ask ``serialize``"."""
    serialize = leaf.serialize
    if leaf is GraphQLString or leaf is GraphQLID:
        return {str: None}  # coerce_string / coerce_str return a str as it is
    if leaf is GraphQLInt:
        return dict(_INT_LEAVES)
    if leaf is GraphQLFloat:
        return {float: None}  # coerce_float returns a float as it is
    if leaf is GraphQLBoolean:
        return {bool: None}  # bool(True) is True
    if getattr(serialize, "__qualname__", "") == "DateTime.serialize" and getattr(
        serialize, "__module__", ""
    ).startswith("graphene."):
        # graphene's DateTime: an isinstance assertion, then ``isoformat()``.
        return dict(_DATETIME_LEAVES)
    if isinstance(leaf, GraphQLEnumType):
        # The enum's answer for each of its plain-string values, asked once (a value it does
        # not list still goes to ``serialize``).
        names = {
            value: serialize(value)
            for value in leaf._value_lookup
            if value.__class__ is str and serialize(value) is not None
        }
        return {str: names.get}
    return {}


def _kind(graphql_type: Any) -> str:
    """The wrapper or leaf kind of a type, by class (graphene subclasses graphql-core's)."""
    cls = graphql_type.__class__
    kind = _KINDS.get(cls)
    if kind is None:
        if isinstance(graphql_type, GraphQLNonNull):
            kind = _NON_NULL
        elif isinstance(graphql_type, GraphQLList):
            kind = _LIST
        elif isinstance(graphql_type, _LEAF):
            kind = _LEAF_KIND
        else:
            kind = _OTHER
        _KINDS[cls] = kind
    return kind


def _thenable(value: Any) -> bool:
    """``promise.is_thenable``, remembered per class (it only looks at the class)."""
    cls = value.__class__
    known = _THENABLE_TYPES.get(cls)
    if known is None:
        known = _THENABLE_TYPES[cls] = is_thenable(value)
    return known


class Unsupported(Exception):
    """The fast path cannot produce this result; run graphql-core's executor instead."""


def _uses_directives(node: Any) -> bool:
    if getattr(node, "directives", None):
        return True
    for child in (
        getattr(node, "definitions", None),
        getattr(getattr(node, "selection_set", None), "selections", None),
    ):
        if child and any(_uses_directives(c) for c in child):
            return True
    return False


def _has_variables(value: Any) -> bool:
    if isinstance(value, ast.Variable):
        return True
    if isinstance(value, ast.ListValue):
        return any(_has_variables(v) for v in value.values)
    if isinstance(value, ast.ObjectValue):
        return any(_has_variables(f.value) for f in value.fields)
    return False


class DocumentPlans:
    """Field plans of one parsed document, shared by every request that sends it (the caller
    keeps it next to the parsed document). Only documents without directives share: with
    ``@include``/``@skip`` the selected fields depend on the variables. Arguments that use
    variables are coerced again for each request."""

    __slots__ = ("root_type", "roots", "shareable", "sql")

    def __init__(self, document: ast.Document) -> None:
        self.shareable = not _uses_directives(document)
        self.roots: dict[str | None, list[tuple[str, _Field]]] = {}
        # The schema's query type, asked once (graphene's ``get_query_type`` looks it up
        # in its type map through three Python calls per request). The caller keeps one
        # ``DocumentPlans`` per schema and document.
        self.root_type: GraphQLObjectType | None = None
        # The statement that renders each operation's ``data`` in PostgreSQL, or ``None``
        # where it cannot (``graphql/customers/sql_render.py``), by operation name.
        self.sql: dict[str | None, Any] = {}


def _direct_object(graphql_type: Any) -> tuple[GraphQLObjectType | None, bool]:
    """``(object type, non-null)`` when values of ``graphql_type`` complete as a plain walk of
    an object type (no abstract type to resolve, no ``is_type_of`` to ask), else ``None``."""
    nonnull = isinstance(graphql_type, GraphQLNonNull)
    inner = graphql_type.of_type if nonnull else graphql_type
    if isinstance(inner, GraphQLObjectType) and not inner.is_type_of:
        return inner, nonnull
    return None, nonnull


class _Field:
    """What resolving one selected field needs, worked out once per document (or request)
    and parent type rather than once per object."""

    __slots__ = (
        "args",
        "attname",
        "default",
        "direct",
        "direct_plan",
        "dynamic_args",
        "fast",
        "field_asts",
        "field_def",
        "flat",
        "item_direct",
        "item_nonnull",
        "item_plan",
        "list_type",
        "money_keys",
        "money_one",
        "money_two",
        "name",
        "no_info",
        "nonnull",
        "resolver",
        "return_type",
        "same",
        "serialize",
        "shortcut",
        "subplans",
    )

    def __init__(self, ctx: ExecutionContext, parent_type: GraphQLObjectType, asts: list) -> None:
        field_ast = asts[0]
        field_name = field_ast.name.value
        if field_name.startswith("__") and field_name != "__typename":
            raise Unsupported(field_name)  # introspection: rare, and graphql-core's own job
        self.name = field_name
        self.field_asts = asts
        self.field_def = None if field_name == "__typename" else parent_type.fields.get(field_name)
        if self.field_def is None and field_name != "__typename":
            raise Unsupported(field_name)
        self.attname: str | None = None
        self.default: Any = None
        self.resolver: Any = None
        # A resolver marked with ``ignores_info`` and no arguments: called without an info.
        self.no_info = False
        # ``shortcut``: tried before a ResolveInfo is built for ``resolver``.
        self.shortcut: Callable[[Any], Any] | None = None
        self.args: dict[str, Any] = _NO_ARGS
        self.dynamic_args = False
        # Sub-selection plans by runtime type, so each object of a list reuses its siblings'.
        self.subplans: dict[GraphQLObjectType, list[tuple[str, _Field]]] = {}
        self.return_type: Any = None
        self.nonnull = False
        self.serialize: Any = None
        # Leaves: converters by exact class (``_fast_leaves``); None for other fields.
        self.fast: dict[type, Any] | None = None
        # The one class ``serialize`` returns unchanged (checked before anything else).
        self.same: type | None = None
        # An object type walked straight from ``_Walker.object`` (no ``complete``).
        self.direct: GraphQLObjectType | None = None
        self.direct_plan: list[tuple[str, _Field]] | None = None
        # When every field of ``direct_plan`` is a default-resolved leaf (Money's ``amount``
        # and ``currency``): ``(response key, attribute, default, class)`` per field, to
        # build the object's dict inline while each value is of the class its serializer
        # returns unchanged.
        self.flat: list[tuple[str, str, Any, type]] | None = None
        # A ``money_of`` resolver's object when ``flat`` selects only Money's ``amount``
        # (a float) and ``currency`` (a str): ``(response key, is the amount)`` per field.
        self.money_keys: tuple[tuple[str, bool], ...] | None = None
        # ``money_keys`` that are just the amount (a line's ``unitPrice { amount }``): its
        # key; the amount then the currency (an order's ``total { amount currency }``):
        # their keys. The compiled walk then writes the dict as a literal, not by a
        # comprehension over ``money_keys`` (a third of the instructions of each).
        self.money_one: str | None = None
        self.money_two: tuple[str, str] | None = None
        # A list of such objects: the list type, its item object type, and whether items
        # are non-null.
        self.list_type: Any = None
        self.item_direct: GraphQLObjectType | None = None
        # The items' plan, once the first list of this field was walked by ``complete``.
        self.item_plan: list[tuple[str, _Field]] | None = None
        self.item_nonnull = False
        if self.field_def is None:
            return
        self.return_type = self.field_def.type
        self.nonnull = isinstance(self.return_type, GraphQLNonNull)
        inner = self.return_type.of_type if self.nonnull else self.return_type
        if isinstance(inner, _LEAF):
            # Leaves are most fields: serialised inline by ``_Walker.object``.
            self.serialize = inner.serialize
            self.fast = _fast_leaves(inner)
            self.same = next((cls for cls, convert in self.fast.items() if convert is None), None)
        else:
            self.direct = _direct_object(inner)[0]
            if isinstance(inner, GraphQLList):
                self.item_direct, self.item_nonnull = _direct_object(inner.of_type)
                if self.item_direct is not None:
                    self.list_type = inner
        resolver = self.field_def.resolver
        if resolver is None:
            raise Unsupported(field_name)
        if (
            isinstance(resolver, partial)
            and resolver.func is dict_or_attr_resolver
            and len(resolver.args) == 2
            and not resolver.keywords
        ):
            # graphene's default resolver: an attribute (or key) read, done inline.
            self.attname, self.default = resolver.args
        self.resolver = resolver
        if self.field_def.args:
            if any(_has_variables(argument.value) for argument in field_ast.arguments or ()):
                self.dynamic_args = True  # coerced per request by ``_Walker.object``
            else:
                self.args = get_argument_values(self.field_def.args, field_ast.arguments, {})
        elif self.attname is None and getattr(resolver, _IGNORES_INFO, False):
            self.no_info = True
        elif self.attname is None:
            self.shortcut = getattr(resolver, _SHORTCUT, None)


def _flat(flat: list[tuple[str, str, Any, type]], value: Any) -> dict[str, Any] | None:
    """``_Field.flat``'s object built from ``value`` (read as ``_Walker.object`` reads it),
    or ``None`` when a value needs its serializer (or is null): then the general walk."""
    built: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, name, default, same in flat:
            leaf = value.get(name, default)
            if leaf.__class__ is not same:
                return None
            built[key] = leaf
    else:
        for key, name, default, same in flat:
            leaf = getattr(value, name, default)
            if leaf.__class__ is not same:
                return None
            built[key] = leaf
    return built


class _Plan(list):  # type: ignore[type-arg]
    """A selection's ``(response key, _Field)`` pairs, with ``walk``: the plan compiled
    into one function (``_compile``) that the walker runs for each object read by
    attribute."""

    __slots__ = ("walk",)

    def __init__(self, fields: Any) -> None:
        super().__init__(fields)
        self.walk = _compile(self)


# The compiled walk of a plan inlines, per field, what ``_Walker.field`` and ``value`` do in
# the common case, and calls them for anything else (so every case still ends where it did):
#   "attr": a default-resolved field, whose value of the class ``same`` is the answer;
#   "convert": a default-resolved leaf converted by ``fast`` (an enum, say);
#   "int", "datetime": the same for an Int (a 32-bit ``int`` is the answer) and a DateTime
#     (a UTC datetime written by orjson, as ``_isoformat`` writes it), inline;
#   "noinfo": a resolver marked ``ignores_info``, then a leaf of class ``same`` or a flat
#     object (Money);
#   "money": a ``money_of`` resolver (no arguments, ``ignores_info``) of a Money object whose
#     selection is ``money_keys``: the object built from the amount (a ``Decimal``, or a
#     ``float`` as the customer 360's statement reads them) and the currency, else
#     ``_Walker.field``;
#   "money<n>": the same, the currency asked once per object for every such field whose
#     ``currency_of`` is the plan's n-th shared one (a line's unit and total prices);
#   "ornone": an ``or_none`` resolver of a nullable String or ID: a ``str`` attribute read
#     inline (``""`` answered as null), anything else through ``_Walker.field``;
#   "object": a default-resolved object of a non-abstract type (an edge's node, a page's
#     ``pageInfo``): its plan's walk, once known, else ``_Walker.value``;
#   "objects": a default-resolved list of such objects (a connection's edges): each
#     item's walk, once the plan is known and when no item is null, a dict or a promise,
#     else ``_Walker.value``;
#   "shortcut-objects": the same for a ``shortcut``'s list (an order's lines read with its
#     page), ``None`` from the shortcut going to ``_Walker.field`` (the resolver);
#   "field": anything else, through ``_Walker.field``.
# The generated text depends on the kinds and the attribute names only (the fields' other
# values are the function's closure), so one text is compiled per sequence of kinds and
# names, not per document.
_MAKERS: dict[tuple[tuple[str, ...], tuple[str | None, ...]], Callable[..., Any]] = {}
_MAX_MAKERS = 512


def _kind_of(field: _Field) -> str:
    if field.no_info and field.direct is not None and hasattr(field.resolver, _MONEY):
        return "money"
    if (
        field.no_info
        and not field.nonnull
        and field.same is str
        and hasattr(field.resolver, _OR_NONE)
    ):
        return "ornone"
    if field.attname is not None and field.same is not None:
        return "attr"
    if field.attname is not None and field.direct is not None:
        return "object"
    if field.attname is not None and field.list_type is not None:
        return "objects"
    if field.shortcut is not None and field.list_type is not None:
        return "shortcut-objects"
    if field.attname is not None and field.fast == _INT_LEAVES:
        return "int"
    if field.attname is not None and field.fast == _DATETIME_LEAVES:
        return "datetime"
    if field.attname is not None and field.fast:
        return "convert"
    if field.no_info and (field.same is not None or field.direct is not None):
        return "noinfo"
    return "field"


def _read(names: tuple[str | None, ...], i: int, target: str, default: str | None) -> list[str]:
    """Generated lines reading field ``i``'s attribute into ``target``: ``source.<name>``
    when its name is an identifier (an attribute load the interpreter specializes, where a
    call of ``getattr`` with a default costs a builtin call per field and object), with
    ``getattr``'s default on ``AttributeError``; else ``getattr(source, A<i>[, default])``."""
    name = names[i]
    if name is None or not name.isidentifier() or keyword.iskeyword(name):
        args = f"source, A{i}" if default is None else f"source, A{i}, {default}"
        return [f"    {target} = getattr({args})"]
    if default is None:
        return [f"    {target} = source.{name}"]
    return [
        "    try:",
        f"        {target} = source.{name}",
        "    except AttributeError:",
        f"        {target} = {default}",
    ]


def _guarded(target: str, call: str, indent: str = "    ") -> list[str]:
    """Generated lines calling a resolver (``target = call``) whose exception gives the
    plan up (graphql-core then runs the document, and reports it as it does)."""
    return [
        f"{indent}try:",
        f"{indent}    {target} = {call}",
        f"{indent}except Exception as exc:",
        f"{indent}    raise Unsupported('resolver raised') from exc",
    ]


def _value(i: int, indent: str = "        ") -> str:
    """The generated fallback for field ``i``'s value ``v``: ``_Walker.value``'s full check."""
    return f"{indent}walker.value(parent_type, K{i}, F{i}, path, result, v)"


def _field(i: int, indent: str = "        ") -> str:
    """The generated fallback for field ``i``: resolved and completed by ``_Walker.field``."""
    return f"{indent}walker.field(parent_type, source, False, K{i}, F{i}, path, result)"


def _answer_if(names: tuple[str | None, ...], i: int, test: str, answer: str = "v") -> list[str]:
    """Generated lines reading field ``i`` into ``v`` and answering ``answer`` when ``test``
    holds, else through ``_Walker.value``."""
    return [
        *_read(names, i, "v", f"D{i}"),
        f"    if {test}:",
        f"        result[K{i}] = {answer}",
        "    else:",
        _value(i),
    ]


def _maker(kinds: tuple[str, ...], names: tuple[str | None, ...]) -> Callable[..., Any]:
    key = (kinds, names)
    maker = _MAKERS.get(key)
    if maker is not None:
        return maker
    lines = ["def walk(walker, source, path, parent_type):", "    result = {}"]
    params = []
    groups: list[str] = []
    for i, kind in enumerate(kinds):
        params.append(f"K{i}, F{i}")
        if kind == "attr":
            params.append(f"A{i}, D{i}, S{i}")
            lines += _answer_if(names, i, f"v.__class__ is S{i}")
        elif kind == "convert":
            params.append(f"A{i}, D{i}, C{i}")
            lines += [
                *_read(names, i, "v", f"D{i}"),
                f"    c = C{i}.get(v.__class__, MISSING)",
                "    if c is None:",
                f"        result[K{i}] = v",
                "    elif c is not MISSING and (converted := c(v)) is not None:",
                f"        result[K{i}] = converted",
                "    else:",
                _value(i),
            ]
        elif kind == "int":
            # ``convert`` with ``_int32`` inline: an ``int`` within 32 bits is the answer.
            params.append(f"A{i}, D{i}")
            lines += _answer_if(names, i, "v.__class__ is int and -2147483648 <= v <= 2147483647")
        elif kind == "datetime":
            # ``convert`` with ``_isoformat`` inline for a UTC datetime.
            params.append(f"A{i}, D{i}")
            lines += _answer_if(
                names,
                i,
                "v.__class__ is DATETIME and v.tzinfo is UTC",
                "dumps(v)[1:-1].decode()",
            )
        elif kind == "noinfo":
            params.append(f"R{i}, S{i}")
            lines += [
                *_guarded("v", f"R{i}(source, None)"),
                f"    if v.__class__ is S{i}:",
                f"        result[K{i}] = v",
                f"    elif v.__class__ is dict and (fl := F{i}.flat) is not None:",
                "        built = {}",
                "        for key, name, default, same in fl:",
                "            leaf = v.get(name, default)",
                "            if leaf.__class__ is not same:",
                _value(i, "                "),
                "                break",
                "            built[key] = leaf",
                "        else:",
                f"            result[K{i}] = built",
                "    else:",
                _value(i),
            ]
        elif kind.startswith("money"):
            params.append(f"A{i}, C{i}")
            if kind == "money":
                currency = _guarded("cur", f"C{i}(source)", "        ")
            else:
                # "money<n>": the currency function of other Money fields of this plan
                # (a line's prices): asked once per object, kept in G<n>.
                group = f"G{kind.removeprefix('money')}"
                if group not in groups:
                    groups.append(group)
                currency = [
                    f"        if {group} is MISSING:",
                    *_guarded(group, f"C{i}(source)", "            "),
                    f"        cur = {group}",
                ]
            lines += [
                *_read(names, i, "a", "None"),
                "    if (a.__class__ is Decimal or a.__class__ is float) and (",
                f"        mk := F{i}.money_keys",
                "    ) is not None:",
                *currency,
                "        if cur.__class__ is str:",
                "            if a.__class__ is not float:",
                "                a = float(a)",
                f"            if (one := F{i}.money_one) is not None:",
                f"                result[K{i}] = {{one: a}}",
                f"            elif (two := F{i}.money_two) is not None:",
                f"                result[K{i}] = {{two[0]: a, two[1]: cur}}",
                "            else:",
                f"                result[K{i}] = {{k: a if amt else cur for k, amt in mk}}",
                "        else:",
                _field(i, "            "),
                "    else:",
                _field(i),
            ]
        elif kind == "object":
            # ``_Walker.value``'s walk of a non-deferred object (``object``), once the
            # field's plan is known (the first object goes through ``value``).
            params.append(f"A{i}, D{i}")
            lines += [
                *_read(names, i, "v", f"D{i}"),
                f"    p = F{i}.direct_plan",
                "    if (",
                "        p is not None",
                "        and (w := p.walk) is not None",
                "        and v is not None",
                "        and v.__class__ is not dict",
                "        and THENABLE.get(v.__class__) is False",
                "    ):",
                f"        result[K{i}] = w(walker, v, [*path, K{i}], F{i}.direct)",
                "    else:",
                _value(i),
            ]
        elif kind == "objects" or kind == "shortcut-objects":
            # ``complete``'s walk of a list of one object type (a connection's edges), when
            # every item is an object of a class known not to be a promise. The list is a
            # default-resolved attribute, or a ``shortcut``'s answer (an order's lines read
            # with its page; ``None``: the resolver through ``_Walker.field``, as before).
            if kind == "objects":
                params.append(f"A{i}, D{i}")
                lines += _read(names, i, "v", f"D{i}")
            else:
                params.append(f"S{i}")
                lines += _guarded("v", f"S{i}(source)")
            # Every item is looked at before any is walked: a walk may queue promises.
            lines += [
                f"    p = F{i}.item_plan",
                "    if v.__class__ is list and p is not None and (w := p.walk) is not None:",
                "        for item in v:",
                "            if (",
                "                item is None",
                "                or item.__class__ is dict",
                "                or THENABLE.get(item.__class__) is not False",
                "            ):",
                _value(i, "                "),
                "                break",
                "        else:",
                f"            t = F{i}.item_direct",
                f"            at = [*path, K{i}]",
                f"            result[K{i}] = [",
                "                w(walker, item, [*at, index], t) for index, item in enumerate(v)",
                "            ]",
            ]
            if kind == "shortcut-objects":
                lines += [
                    "    elif v is None:",
                    _field(i),
                ]
            lines += ["    else:", _value(i)]
        elif kind == "ornone":
            params.append(f"A{i}")
            lines += [
                "    try:",
                *("    " + line for line in _read(names, i, "v", None)),
                "    except Exception as exc:",
                "        raise Unsupported('resolver raised') from exc",
                "    if v.__class__ is str:",
                f"        result[K{i}] = v or None",
                "    else:",
                _field(i),
            ]
        else:
            lines.append(_field(i, "    "))
    if groups:
        lines.insert(2, f"    {' = '.join(groups)} = MISSING")
    lines.append("    return result")
    body = "\n".join("    " + line for line in lines)
    head = (
        "def make(flat, Unsupported, MISSING, Decimal, THENABLE, DATETIME, UTC, dumps, "
        f"{', '.join(params)}):"
    )
    text = f"{head}\n{body}\n    return walk\n"
    namespace: dict[str, Any] = {}
    exec(compile(text, f"<plan {'-'.join(kinds)}>", "exec"), namespace)
    maker = namespace["make"]
    if len(_MAKERS) < _MAX_MAKERS:  # clients choose selections
        _MAKERS[key] = maker
    return maker


def _compile(plan: list[tuple[str, _Field]]) -> Callable[..., Any] | None:
    """The plan's walk for objects read by attribute (``None``: walk field by field)."""
    if not plan:
        return None
    kinds = [_kind_of(field) for _, field in plan]
    # Money fields whose currency comes from the same function share one call per object:
    # kind "money<n>", n numbering those functions in the plan.
    currency_of = [
        getattr(field.resolver, _MONEY)[1] if kind == "money" else None
        for (_, field), kind in zip(plan, kinds, strict=True)
    ]
    shared: list[Any] = []
    for index, function in enumerate(currency_of):
        if function is not None and currency_of.count(function) > 1:
            if function not in shared:
                shared.append(function)
            kinds[index] = f"money{shared.index(function)}"
    args: list[Any] = [
        _flat,
        Unsupported,
        _MISSING,
        Decimal,
        _THENABLE_TYPES,
        datetime.datetime,
        _UTC,
        orjson.dumps,
    ]
    for (name, field), kind in zip(plan, kinds, strict=True):
        args += (name, field)
        if kind == "attr":
            args += (field.attname, field.default, field.same)
        elif kind == "convert":
            args += (field.attname, field.default, field.fast)
        elif kind == "noinfo":
            args += (field.resolver, field.same)
        elif kind.startswith("money"):
            args += getattr(field.resolver, _MONEY)
        elif kind == "ornone":
            args.append(getattr(field.resolver, _OR_NONE))
        elif kind in ("object", "objects", "int", "datetime"):
            args += (field.attname, field.default)
        elif kind == "shortcut-objects":
            args.append(field.shortcut)
    # The attribute each field reads, written into the walk's text (``_read``).
    names: list[str | None] = []
    for (_, field), kind in zip(plan, kinds, strict=True):
        if kind in ("attr", "convert", "object", "objects", "int", "datetime"):
            names.append(field.attname)
        elif kind.startswith("money"):
            names.append(getattr(field.resolver, _MONEY)[0])
        elif kind == "ornone":
            names.append(getattr(field.resolver, _OR_NONE))
        else:
            names.append(None)
    return _maker(tuple(kinds), tuple(names))(*args)


class _Pending:
    __slots__ = ("container", "field", "key", "parent_type", "path", "promise", "return_type")

    def __init__(
        self,
        promise: Promise,
        container: Any,
        key: Any,
        return_type: Any,
        field: _Field,
        parent_type: GraphQLObjectType,
        path: list[Any],
    ) -> None:
        self.promise = promise
        self.container = container
        self.key = key
        self.return_type = return_type
        self.field = field
        self.parent_type = parent_type
        self.path = path


_MISSING = object()
# Money's leaves as ``_Field.flat`` reads them: (attribute, the class answered unchanged).
_MONEY_LEAVES = frozenset({("amount", float), ("currency", str)})


class _Walker:
    def __init__(self, ctx: ExecutionContext) -> None:
        self.ctx = ctx
        self.plans: dict[tuple[Any, ...], list[tuple[str, _Field]]] = {}
        self.pending: list[_Pending] = []
        # ``ResolveInfo``'s per-request arguments, in its positional order.
        self.info_args = (
            ctx.schema,
            ctx.fragments,
            ctx.root_value,
            ctx.operation,
            ctx.variable_values,
            ctx.context_value,
        )

    def plan(self, parent_type: GraphQLObjectType, field_asts: list) -> list[tuple[str, _Field]]:
        key = (parent_type, tuple(field_asts))
        plan = self.plans.get(key)
        if plan is None:
            fields = self.ctx.get_sub_fields(parent_type, field_asts)
            plan = _Plan(
                (name, _Field(self.ctx, parent_type, asts)) for name, asts in fields.items()
            )
            self.plans[key] = plan
        return plan

    def subplan(self, field: _Field, object_type: GraphQLObjectType) -> list[tuple[str, _Field]]:
        plan = field.subplans.get(object_type)
        if plan is not None:
            # What follows ran when the plan was made (``subplans`` is only filled here).
            return plan
        plan = field.subplans[object_type] = self.plan(object_type, field.field_asts)
        if object_type is field.item_direct:
            field.item_plan = plan
        if object_type is field.direct:
            field.direct_plan = plan
            if all(f.attname is not None and f.same is not None for _, f in plan):
                field.flat = [(name, f.attname, f.default, f.same) for name, f in plan]  # type: ignore[misc]
                if all((attname, same) in _MONEY_LEAVES for _, attname, _, same in field.flat):
                    keys = field.money_keys = tuple(
                        (name, attname == "amount") for name, attname, _, _ in field.flat
                    )
                    if len(keys) == 1 and keys[0][1]:
                        field.money_one = keys[0][0]
                    elif len(keys) == 2 and keys[0][1] and not keys[1][1]:
                        field.money_two = (keys[0][0], keys[1][0])
        return plan

    def info(self, field: _Field, parent_type: GraphQLObjectType, path: list[Any]) -> ResolveInfo:
        return ResolveInfo(
            field.name, field.field_asts, field.return_type, parent_type, *self.info_args, path
        )

    def object(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        plan: list[tuple[str, _Field]],
        path: list[Any],
    ) -> dict[str, Any]:
        """One object's selection: the plan's compiled walk (``_compile``) for objects read
        by attribute, else field by field (``field``), which handles every case."""
        walk = plan.walk  # type: ignore[attr-defined]
        if walk is not None and not isinstance(source, dict):
            return walk(self, source, path, parent_type)
        result: dict[str, Any] = {}
        is_dict = isinstance(source, dict)
        for response_name, field in plan:
            self.field(parent_type, source, is_dict, response_name, field, path, result)
        return result

    def field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        is_dict: bool,
        response_name: str,
        field: _Field,
        path: list[Any],
        result: dict[str, Any],
    ) -> None:
        """Resolve one field of ``source`` and set its answer in ``result``. The common
        cases are inlined (an attribute read, a resolver without ``info``); the others build
        a ``ResolveInfo`` and call the resolver as graphql-core does."""
        attname = field.attname
        field_path = None
        if attname is not None:
            if is_dict:
                value = source.get(attname, field.default)
            else:
                value = getattr(source, attname, field.default)
        elif field.no_info:
            try:
                value = field.resolver(source, None)
            except Exception as exc:
                raise Unsupported("resolver raised") from exc
        elif field.field_def is None:  # __typename
            result[response_name] = parent_type.name
            return
        else:
            value = None
            if field.shortcut is not None:
                try:
                    value = field.shortcut(source)
                except Exception as exc:
                    raise Unsupported("resolver raised") from exc
            if value is None:
                field_path = [*path, response_name]
                schema, fragments, root_value, operation, variable_values, context = self.info_args
                info = ResolveInfo(
                    field.name,
                    field.field_asts,
                    field.return_type,
                    parent_type,
                    schema,
                    fragments,
                    root_value,
                    operation,
                    variable_values,
                    context,
                    field_path,
                )
                args = field.args
                if field.dynamic_args:
                    try:
                        args = get_argument_values(
                            field.field_def.args, field.field_asts[0].arguments, variable_values
                        )
                    except Exception as exc:
                        raise Unsupported("arguments") from exc
                try:
                    if args is _NO_ARGS:
                        value = field.resolver(source, info)
                    else:
                        value = field.resolver(source, info, **args)
                except Exception as exc:
                    raise Unsupported("resolver raised") from exc
        self.value(parent_type, response_name, field, path, result, value, field_path)

    def value(
        self,
        parent_type: GraphQLObjectType,
        response_name: str,
        field: _Field,
        path: list[Any],
        result: dict[str, Any],
        value: Any,
        field_path: list[Any] | None = None,
    ) -> None:
        """Set the answer of ``field`` for its resolved ``value`` in ``result``: inline for a
        leaf whose class its serializer returns unchanged (or converts by ``fast``), a
        default-resolved leaves-only object (``flat``) and a non-deferred object; through
        ``complete`` otherwise."""
        cls = value.__class__
        if cls is field.same:
            result[response_name] = value
            return
        if value is None:
            if field.nonnull:
                raise Unsupported("null in a non-null field")
            result[response_name] = None
            return
        fast = field.fast
        if fast is not None:
            convert = fast.get(cls, _MISSING)
            if convert is None:
                result[response_name] = value
                return
            if convert is not _MISSING:
                converted = convert(value)
                if converted is not None:
                    result[response_name] = converted
                    return
            thenable = _THENABLE_TYPES.get(cls)
            if thenable is None:
                thenable = _thenable(value)
            if not thenable:
                try:
                    serialized = field.serialize(value)
                except Exception as exc:  # graphql-core's coerce_int raises: its error
                    raise Unsupported("not serialisable") from exc
                if serialized is None:
                    raise Unsupported("not serialisable")
                result[response_name] = serialized
                return
        elif field.direct is not None:
            thenable = _THENABLE_TYPES.get(cls)
            if thenable is None:
                thenable = _thenable(value)
            if not thenable:
                flat = field.flat
                if flat is not None:
                    built = _flat(flat, value)
                    if built is not None:
                        result[response_name] = built
                        return
                if field_path is None:
                    field_path = [*path, response_name]
                result[response_name] = self.object(
                    field.direct,
                    value,
                    field.direct_plan or self.subplan(field, field.direct),
                    field_path,
                )
                return
        if field_path is None:
            field_path = [*path, response_name]
        result[response_name] = self.complete(
            field.return_type, field, parent_type, field_path, value, result, response_name
        )

    def complete(
        self,
        return_type: Any,
        field: _Field,
        parent_type: GraphQLObjectType,
        path: list[Any],
        value: Any,
        container: Any,
        key: Any,
    ) -> Any:
        if _thenable(value):
            promise = Promise.resolve(value)
            if promise.is_fulfilled:
                value = promise.value
            elif promise.is_rejected:
                raise Unsupported("rejected")
            else:
                self.pending.append(
                    _Pending(promise, container, key, return_type, field, parent_type, path)
                )
                return None  # placeholder, replaced when the level is drained
        kind = _kind(return_type)
        if kind is _NON_NULL:
            if value is None:
                raise Unsupported("null in a non-null field")
            return_type = return_type.of_type
            kind = _kind(return_type)
        elif value is None:
            return None
        if kind is _LEAF_KIND:
            try:
                serialized = return_type.serialize(value)
            except Exception as exc:
                raise Unsupported("not serialisable") from exc
            if serialized is None:
                raise Unsupported("not serialisable")
            return serialized
        if kind is _LIST:
            if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
                raise Unsupported("not a list")
            item_type = return_type.of_type
            items: list[Any] = []
            if return_type is field.list_type:
                # Items of one object type: walked straight, unless deferred or null.
                object_type = field.item_direct
                plan = self.subplan(field, object_type)
                walk = plan.walk  # type: ignore[attr-defined]
                nonnull = field.item_nonnull
                thenables = _THENABLE_TYPES
                for index, item in enumerate(value):
                    if item is None:
                        if nonnull:
                            raise Unsupported("null in a non-null field")
                        items.append(None)
                        continue
                    thenable = thenables.get(item.__class__)
                    if thenable is None:
                        thenable = _thenable(item)
                    if thenable:
                        items.append(None)
                        items[index] = self.complete(
                            item_type, field, parent_type, [*path, index], item, items, index
                        )
                    elif walk is not None and not isinstance(item, dict):
                        items.append(walk(self, item, [*path, index], object_type))
                    else:
                        items.append(self.object(object_type, item, plan, [*path, index]))
                return items
            for index, item in enumerate(value):
                items.append(None)
                items[index] = self.complete(
                    item_type, field, parent_type, [*path, index], item, items, index
                )
            return items
        if isinstance(return_type, _ABSTRACT):
            return_type = self.runtime_type(return_type, field, parent_type, path, value)
        if isinstance(return_type, GraphQLObjectType):
            if return_type.is_type_of and not return_type.is_type_of(
                value, self.info(field, parent_type, path)
            ):
                raise Unsupported("wrong object type")
            return self.object(return_type, value, self.subplan(field, return_type), path)
        raise Unsupported("unexpected type")

    def runtime_type(
        self,
        return_type: Any,
        field: _Field,
        parent_type: GraphQLObjectType,
        path: list[Any],
        value: Any,
    ) -> GraphQLObjectType:
        info = self.info(field, parent_type, path)
        schema: GraphQLSchema = self.ctx.schema
        if return_type.resolve_type:
            runtime = return_type.resolve_type(value, info)
        else:
            runtime = next(
                (
                    t
                    for t in schema.get_possible_types(return_type)
                    if callable(t.is_type_of) and t.is_type_of(value, info)
                ),
                None,
            )
        if isinstance(runtime, str):
            runtime = schema.get_type(runtime)
        if not isinstance(runtime, GraphQLObjectType) or not schema.is_possible_type(
            return_type, runtime
        ):
            raise Unsupported("abstract type")
        return runtime

    def drain(self) -> None:
        """Complete deferred values level by level. While a level is walked, promise's
        trampoline only queues DataLoader dispatches (``is_tick_used``, as inside graphql-core's
        own execution); draining the queue then runs each loader once for the whole level."""
        trampoline = async_instance
        while self.pending:
            trampoline.drain_queues()
            trampoline.is_tick_used = True
            level, self.pending = self.pending, []
            for item in level:
                promise = item.promise
                if not promise.is_fulfilled:
                    raise Unsupported("rejected or never resolved")
                item.container[item.key] = self.complete(
                    item.return_type,
                    item.field,
                    item.parent_type,
                    item.path,
                    promise.value,
                    item.container,
                    item.key,
                )


def execute_query(
    schema: GraphQLSchema,
    document: ast.Document,
    context: Any,
    variables: dict[str, Any],
    operation_name: str | None,
    plans: DocumentPlans | None = None,
) -> dict[str, Any]:
    """``data`` of a query operation that resolves without errors; raises
    :class:`Unsupported` otherwise (then nothing was returned, and the caller falls back)."""
    try:
        ctx = ExecutionContext(
            schema, document, None, context, variables, operation_name, SyncExecutor(), None, False
        )
    except Exception as exc:
        raise Unsupported("context") from exc
    operation = ctx.operation
    if operation.operation != "query":
        raise Unsupported(operation.operation)
    root_type = plans.root_type if plans is not None else None
    if root_type is None:
        root_type = schema.get_query_type()
        if plans is not None:
            plans.root_type = root_type
    walker = _Walker(ctx)
    trampoline = async_instance
    if trampoline.is_tick_used:
        raise Unsupported("inside a promise callback")  # never the case in a request
    root_plan = plans.roots.get(operation_name) if plans is not None and plans.shareable else None
    if root_plan is None:
        fields = collect_fields(
            ctx, root_type, operation.selection_set, DefaultOrderedDict(list), set()
        )
        root_plan = _Plan((name, _Field(ctx, root_type, asts)) for name, asts in fields.items())
        if plans is not None and plans.shareable:
            plans.roots[operation_name] = root_plan
    trampoline.is_tick_used = True
    try:
        data = walker.object(root_type, None, root_plan, [])
        walker.drain()
    finally:
        # Leave the (thread-local) trampoline as found: run what is still queued, untick.
        if trampoline.normal_queue or trampoline.late_queue:
            trampoline.is_tick_used = True
            trampoline.drain_queues()
        trampoline.reset()
    return data
