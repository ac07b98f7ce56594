"""Relay connections as Saleor serves them: ``first/after/last/before``, ``totalCount``,
keyset cursors (stable under inserts, unlike offsets) over a unique ordering.

``connection_field(ConnectionType)`` declares the field; the resolver returns
``paginate_queryset(queryset, args, ordering, ConnectionType)``. A batched loader that already
fetched a page can use ``build_connection`` directly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import graphene
from django.db.models import Q, QuerySet
from graphql.error import GraphQLError

from saleor_crm_plugin.conf import crm_settings


class CountableConnection(graphene.relay.Connection):
    """Base of every CRM connection: adds ``totalCount`` (counted only when asked for)."""

    class Meta:
        abstract = True

    total_count = graphene.Int(description="A total count of items in the collection.")

    @staticmethod
    def resolve_total_count(root: Any, info: Any) -> int | None:
        count = getattr(root, "count_fn", None)
        return count() if count else None


def connection_field(connection_type: type[CountableConnection], **kwargs: Any) -> graphene.Field:
    return graphene.Field(
        connection_type,
        first=graphene.Int(description="Return the first n elements from the list."),
        last=graphene.Int(description="Return the last n elements from the list."),
        after=graphene.String(
            description="Return the elements in the list that come after the specified cursor."
        ),
        before=graphene.String(
            description="Return the elements in the list that come before the specified cursor."
        ),
        **kwargs,
    )


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.b64encode(json.dumps([_encode_value(v) for v in values]).encode()).decode()


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        values = json.loads(base64.b64decode(cursor.encode(), validate=True))
    except (ValueError, TypeError) as exc:
        raise GraphQLError("Received cursor is invalid.") from exc
    if not isinstance(values, list) or len(values) != size:
        raise GraphQLError("Received cursor is invalid.")
    return values


def _field_name(order: str) -> tuple[str, bool]:
    return (order[1:], True) if order.startswith("-") else (order, False)


def _cursor_filter(ordering: Sequence[str], values: Sequence[Any], *, forward: bool) -> Q:
    """Rows strictly after (``forward``) or before the cursor in ``ordering``:
    ``(a > x) | (a = x & b > y) | ...`` with ``>`` flipped for descending fields."""
    query = Q()
    for index, order in enumerate(ordering):
        name, descending = _field_name(order)
        # Forward on a descending field, or backward on an ascending one, means "less than".
        lookup = "lt" if descending == forward else "gt"
        condition = Q(**{f"{name}__{lookup}": values[index]})
        for previous in range(index):
            condition &= Q(**{_field_name(ordering[previous])[0]: values[previous]})
        query |= condition
    return query


def _reverse(ordering: Sequence[str]) -> list[str]:
    return [o[1:] if o.startswith("-") else f"-{o}" for o in ordering]


def validate_page_args(args: dict[str, Any], field_name: str) -> tuple[int | None, int | None]:
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        raise GraphQLError(
            f"You must provide a `first` or `last` value to properly paginate the "
            f"`{field_name}` connection."
        )
    if first is not None and last is not None:
        raise GraphQLError("Providing both `first` and `last` parameters is not supported.")
    limit = crm_settings.GRAPHQL_MAX_PAGE_SIZE
    for name, value in (("first", first), ("last", last)):
        if value is None:
            continue
        if value < 0:
            raise GraphQLError(f"Argument `{name}` must be a non-negative integer.")
        if value > limit:
            raise GraphQLError(
                f"Requesting {value} records on the `{field_name}` connection exceeds the "
                f"`{name}` limit of {limit} records."
            )
    return first, last


def cursor_values(item: Any, ordering: Sequence[str]) -> list[Any]:
    return [getattr(item, _field_name(o)[0]) for o in ordering]


def build_connection(
    items: list[Any],
    *,
    has_more: bool,
    args: dict[str, Any],
    ordering: Sequence[str],
    connection_type: type[CountableConnection],
    count_fn: Callable[[], int] | None,
) -> CountableConnection:
    """Wrap one fetched page (already in display order, ``has_more`` = a row beyond it)."""
    backwards = args.get("last") is not None
    edge_type = connection_type.Edge
    edges = [
        edge_type(node=item, cursor=encode_cursor(cursor_values(item, ordering))) for item in items
    ]
    page_info = graphene.relay.PageInfo(
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
        has_next_page=bool(args.get("before")) if backwards else has_more,
        has_previous_page=has_more if backwards else bool(args.get("after")),
    )
    connection = connection_type(edges=edges, page_info=page_info)
    connection.count_fn = count_fn
    return connection


def paginate_queryset(
    queryset: QuerySet,
    args: dict[str, Any],
    *,
    ordering: Sequence[str],
    connection_type: type[CountableConnection],
    field_name: str,
) -> CountableConnection:
    """One page of ``queryset`` in ``ordering`` (which must end with a unique field)."""
    first, last = validate_page_args(args, field_name)
    filtered = queryset
    if args.get("after"):
        values = decode_cursor(args["after"], len(ordering))
        filtered = filtered.filter(_cursor_filter(ordering, values, forward=True))
    if args.get("before"):
        values = decode_cursor(args["before"], len(ordering))
        filtered = filtered.filter(_cursor_filter(ordering, values, forward=False))
    if last is not None:
        rows = list(filtered.order_by(*_reverse(ordering))[: last + 1])
        has_more = len(rows) > last
        items = list(reversed(rows[:last]))
    else:
        assert first is not None
        rows = list(filtered.order_by(*ordering)[: first + 1])
        has_more = len(rows) > first
        items = rows[:first]
    return build_connection(
        items,
        has_more=has_more,
        args=args,
        ordering=ordering,
        connection_type=connection_type,
        count_fn=queryset.count,
    )
