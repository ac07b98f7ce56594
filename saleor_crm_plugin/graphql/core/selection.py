"""Which model columns a query's selection reads, so hot loaders fetch only those.

A customer 360 asks for about a third of an order's columns and of a line's, but the loaders
read every one: psycopg parses each value (Decimals and timestamps the most) and Django sets
it on the instance, for nothing. A resolver states the columns it reads with ``@reads``;
a field resolved by graphene's default resolver reads its own attribute. ``selected_columns``
adds them up for the objects a field returns, once per document (cached with the document's
field nodes), and a loader passes the set to ``RowReader.fetch(only=...)``.

Being wrong costs queries, never answers: a column left out is deferred like
``QuerySet.only`` leaves it, and Django loads it on first access. Whatever is not known (a
resolver without ``@reads``, an attribute that is not a column, an abstract type) answers
``None``: read every column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

from graphene.relay.node import GlobalID
from graphene.types.resolver import dict_or_attr_resolver
from graphql.execution.values import get_argument_values
from graphql.language import ast
from graphql.type import GraphQLList, GraphQLNonNull, GraphQLObjectType

__all__ = ["reads", "selected_columns", "surely_selected", "surely_selected_arguments"]

_READS = "_crm_reads"
_F = TypeVar("_F", bound=Callable[..., Any])
Columns = frozenset[str]

_K = TypeVar("_K")
_V = TypeVar("_V")


class _Memo(dict[_K, _V]):
    """A bounded memo of answers that are cheap to work out again: read without a lock
    (``dict.get``, atomic under the GIL) and emptied when full. A customer 360 asks these
    caches ten times; through ``core.lru.LRUCache`` (a lock, an ``OrderedDict`` and a
    ``move_to_end`` per hit) that was ~1% of its instructions. Clients choose documents, so
    they may churn it: they then cost the few microseconds of working the answers out."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: _K, value: _V) -> None:
        if len(self) >= self.size:
            self.clear()
        self[key] = value


# Keyed by the field's AST nodes (hashed by identity; the key keeps them alive, so an id is
# never reused while cached), its return type and the path below it.
_cache: _Memo[tuple[Any, ...], tuple[Columns | None]] = _Memo(1024)
_selected_cache: _Memo[tuple[Any, ...], bool] = _Memo(1024)
# The field (definition, AST node) below a field, by the field's AST nodes and the name; then
# its arguments in a document without variables.
_field_cache: _Memo[tuple[Any, ...], tuple[Any, Any]] = _Memo(1024)
_arguments_cache: _Memo[tuple[Any, ...], tuple[dict[str, Any] | None]] = _Memo(1024)


def reads(*attnames: str) -> Callable[[_F], _F]:
    """Mark a resolver with the model attributes (``attname``s: ``customer_id``, not
    ``customer``) it reads from its root; an unmarked custom resolver counts as reading
    everything. Columns of *another* object it reaches (a line's order) belong on the
    resolver that loads that object for it (``CrmOrder.lines`` reads ``currency``)."""

    def mark(resolver: _F) -> _F:
        setattr(resolver, _READS, frozenset(attnames))
        return resolver

    return mark


def selected_columns(info: Any, path: Iterable[str] = ()) -> Columns | None:
    """Attributes read from the objects returned by ``info``'s field (or, with ``path``, by
    the fields below it: ``("edges", "node")`` for a connection's nodes), ``None`` when
    they cannot be known. Directives and fragment type conditions are ignored: every
    field that *may* be selected counts, so the answer holds for any variables."""
    path = tuple(path)
    key = (tuple(info.field_asts), info.return_type, path)
    cached = _cache.get(key)
    if cached is None:
        cached = (_columns(info.field_asts, info.return_type, path, info.fragments),)
        _cache.put(key, cached)
    return cached[0]


def surely_selected(info: Any, path: tuple[str, ...]) -> bool:
    """Whether the field at ``path`` below ``info``'s field is selected whatever the
    variables: reached through fields and fragments none of which has a directive. A loader
    reads what hangs below its objects in the same batch only then, so a document that
    leaves it out (``@include(if: $no)``) costs no query it did not cost before. (Fragment
    type conditions need no check: below an object type, a fragment that validates
    applies.)"""
    key = (tuple(info.field_asts), path)
    cached = _selected_cache.get(key)
    if cached is None:
        nodes: list[Any] = list(info.field_asts)
        for name in path:
            nodes = [f for f in _plain_fields(nodes, info.fragments) if f.name.value == name]
            if not nodes:
                break
        cached = bool(nodes)
        _selected_cache.put(key, cached)
    return cached


def surely_selected_arguments(info: Any, name: str) -> dict[str, Any] | None:
    """The arguments the field ``name`` below ``info``'s field is resolved with (variables
    applied, defaults filled, as the executor passes them), when that field is surely
    selected (``surely_selected``) under one response key; ``None`` otherwise (not
    selected, aliased with other arguments, under a directive, or arguments that do not
    coerce: the field's own resolver then reports them). A loader can then read what that
    field will ask for in its own batch; the field's resolver must still check that it asks
    for just that."""
    key = (tuple(info.field_asts), name)
    found = _field_cache.get(key)
    if found is None:
        plain = _plain_fields(list(info.field_asts), info.fragments)
        nodes = [f for f in plain if f.name.value == name]
        object_type = _object_type(info.return_type)
        field_def = None if object_type is None else object_type.fields.get(name)
        if field_def is None or len({(f.alias or f.name).value for f in nodes}) != 1:
            found = (None, None)
        else:
            found = (field_def, nodes[0])
        _field_cache.put(key, found)
    field_def, node = found
    if field_def is None:
        return None
    variables = info.variable_values
    if variables:
        return _arguments(field_def, node, variables)
    cached = _arguments_cache.get(key)
    if cached is None:
        cached = (_arguments(field_def, node, {}),)
        _arguments_cache.put(key, cached)
    return cached[0]


def _arguments(field_def: Any, node: ast.Field, variables: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return get_argument_values(field_def.args, node.arguments, variables)
    except Exception:  # the field's resolver reports it, as before
        return None


def _plain_fields(nodes: list[Any], fragments: dict[str, Any]) -> list[ast.Field]:
    """The fields of the nodes' selection sets reached without a directive (on the field or
    on a fragment spread, inline fragment or fragment definition on the way)."""
    found: list[ast.Field] = []
    pending = [s for node in nodes if node.selection_set for s in node.selection_set.selections]
    seen: set[str] = set()
    while pending:
        selection = pending.pop()
        if selection.directives:
            continue
        if isinstance(selection, ast.Field):
            found.append(selection)
        elif isinstance(selection, ast.FragmentSpread):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen and not fragment.directives:
                seen.add(name)
                pending.extend(fragment.selection_set.selections)
        elif isinstance(selection, ast.InlineFragment):
            pending.extend(selection.selection_set.selections)
    return found


def _object_type(graphql_type: Any) -> GraphQLObjectType | None:
    while isinstance(graphql_type, GraphQLNonNull | GraphQLList):
        graphql_type = graphql_type.of_type
    return graphql_type if isinstance(graphql_type, GraphQLObjectType) else None


def _fields(nodes: list[Any], fragments: dict[str, Any]) -> list[ast.Field]:
    """Every field of the nodes' selection sets, through fragments, whatever their type
    condition or directives."""
    found: list[ast.Field] = []
    pending = [s for node in nodes if node.selection_set for s in node.selection_set.selections]
    seen: set[str] = set()
    while pending:
        selection = pending.pop()
        if isinstance(selection, ast.Field):
            found.append(selection)
        elif isinstance(selection, ast.FragmentSpread):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                pending.extend(fragment.selection_set.selections)
        elif isinstance(selection, ast.InlineFragment):
            pending.extend(selection.selection_set.selections)
    return found


def _columns(
    nodes: list[Any], return_type: Any, path: tuple[str, ...], fragments: dict[str, Any]
) -> Columns | None:
    object_type = _object_type(return_type)
    for name in path:
        if object_type is None:
            return None
        field_def = object_type.fields.get(name)
        if field_def is None:
            return None
        nodes = [f for f in _fields(nodes, fragments) if f.name.value == name]
        object_type = _object_type(field_def.type)
    if object_type is None:
        return None
    columns: set[str] = set()
    for node in _fields(nodes, fragments):
        name = node.name.value
        if name == "__typename":
            continue
        field_def = object_type.fields.get(name)
        if field_def is None:
            return None
        read = resolver_reads(field_def.resolver)
        if read is None:
            return None
        columns.update(read)
    return frozenset(columns)


def resolver_reads(resolver: Any) -> Columns | None:
    marked = getattr(resolver, _READS, None)
    if marked is not None:
        return marked
    if isinstance(resolver, partial):
        if resolver.func is dict_or_attr_resolver and len(resolver.args) == 2:
            return frozenset((resolver.args[0],))
        if resolver.func is GlobalID.id_resolver and resolver.args:
            # A relay ``id``: the global ID of what the parent resolver (``root.id``) gives.
            return resolver_reads(resolver.args[0])
    return None
