"""Query depth and complexity limits, checked before execution.

A public endpoint must refuse documents that would make the database or the resolver loop do
unbounded work. Depth counts nested selections; complexity estimates the number of resolved
fields: each field costs 1, multiplied by the ``first``/``last`` of every enclosing connection
(the page size the client asked for, or the number of federation ``representations``).
Introspection (``__schema``, ``__type``) is exempt: tools
need it and it touches no data.
"""

from __future__ import annotations

from typing import Any

from graphql.error import GraphQLError
from graphql.language import ast

from saleor_crm_plugin.conf import crm_settings


def _argument_value(node: ast.Field, name: str, variables: dict[str, Any]) -> int | None:
    """An integer argument, or the length of a list argument (federation ``representations``:
    each one is resolved like a page item)."""
    for argument in node.arguments or []:
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, ast.IntValue):
            return int(value.value)
        if isinstance(value, ast.ListValue):
            return len(value.values)
        if isinstance(value, ast.Variable):
            raw = variables.get(value.name.value)
            if isinstance(raw, list):
                return len(raw)
            return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    return None


class _Measure:
    def __init__(self, fragments: dict[str, ast.FragmentDefinition], variables: dict[str, Any]):
        self.fragments = fragments
        self.variables = variables

    def walk(
        self, selection_set: ast.SelectionSet | None, depth: int, visiting: frozenset[str]
    ) -> tuple[int, int]:
        """Return ``(max depth, complexity)`` of a selection set at ``depth``."""
        if selection_set is None:
            return depth, 0
        deepest, cost = depth, 0
        for selection in selection_set.selections:
            if isinstance(selection, ast.Field):
                if selection.name.value.startswith("__"):
                    continue
                multiplier = (
                    _argument_value(selection, "first", self.variables)
                    or _argument_value(selection, "last", self.variables)
                    or _argument_value(selection, "representations", self.variables)
                    or 1
                )
                child_depth, child_cost = self.walk(selection.selection_set, depth + 1, visiting)
                deepest = max(deepest, child_depth)
                cost += 1 + multiplier * child_cost
            elif isinstance(selection, ast.FragmentSpread):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in visiting:
                    continue  # validation reports unknown or cyclic fragments
                child_depth, child_cost = self.walk(
                    fragment.selection_set, depth, visiting | {name}
                )
                deepest, cost = max(deepest, child_depth), cost + child_cost
            elif isinstance(selection, ast.InlineFragment):
                child_depth, child_cost = self.walk(selection.selection_set, depth, visiting)
                deepest, cost = max(deepest, child_depth), cost + child_cost
        return deepest, cost


def measure(document: ast.Document, variables: dict[str, Any] | None = None) -> tuple[int, int]:
    """``(depth, complexity)`` of the costliest operation in ``document``."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, ast.FragmentDefinition)
    }
    walker = _Measure(fragments, variables or {})
    depth = complexity = 0
    for definition in document.definitions:
        if isinstance(definition, ast.OperationDefinition):
            d, c = walker.walk(definition.selection_set, 0, frozenset())
            depth, complexity = max(depth, d), max(complexity, c)
    return depth, complexity


def check_limits(
    document: ast.Document, variables: dict[str, Any] | None = None
) -> list[GraphQLError]:
    return limit_errors(*measure(document, variables))


def limit_errors(depth: int, complexity: int) -> list[GraphQLError]:
    """The errors for a measured document under the current settings."""
    errors: list[GraphQLError] = []
    max_depth = crm_settings.GRAPHQL_MAX_DEPTH
    if depth > max_depth:
        errors.append(
            GraphQLError(f"The query exceeds the maximum depth of {max_depth} (it has {depth}).")
        )
    max_complexity = crm_settings.GRAPHQL_MAX_COMPLEXITY
    if complexity > max_complexity:
        errors.append(
            GraphQLError(
                f"The query exceeds the maximum cost of {max_complexity} (it costs {complexity})."
            )
        )
    return errors
