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
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import graphene
import orjson
from django.db.models import Q, QuerySet
from graphql.error import GraphQLError

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.graphql.core.executor import ignores_info


class CountableConnection(graphene.relay.Connection):
    """Base of every CRM connection: adds ``totalCount`` (counted only when asked for)."""

    class Meta:
        abstract = True

    total_count = graphene.Int(description="A total count of items in the collection.")

    @staticmethod
    @ignores_info
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


# What ``json.dumps`` writes a ``str`` with (``ensure_ascii``): its C encoder's function.
_ENCODE_STR = json.encoder.encode_basestring_ascii


def encode_cursor(values: Sequence[Any]) -> str:
    """base64 of ``json.dumps`` of the values. A cursor of strings, ``int``s and naive or
    UTC datetimes (a page's ``created_at`` and primary key) is written here as
    ``json.dumps`` writes it, without the encoder it builds per call; anything else goes
    through ``json.dumps``. Such a datetime is written by orjson: the same text as
    ``json.dumps`` of its ``isoformat()`` (RFC 3339, microseconds only when not zero,
    ``+00:00``, ASCII), for a fraction of ``isoformat``'s instructions (the customer 360's
    ``endCursor``; ``test_core.py`` compares both over every year width)."""
    parts = []
    for value in values:
        cls = value.__class__
        if cls is str:
            parts.append(_ENCODE_STR(value))
        elif cls is int:
            parts.append(int.__repr__(value))
        elif cls is datetime and ((zone := value.tzinfo) is UTC or zone is None):
            parts.append(orjson.dumps(value).decode())
        else:
            text = json.dumps([_encode_value(v) for v in values])
            break
    else:
        text = f"[{', '.join(parts)}]"
    return base64.b64encode(text.encode()).decode()


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
    names = _CURSOR_NAMES.get(ordering) if ordering.__class__ is tuple else None
    if names is None:
        names = tuple(_field_name(o)[0] for o in ordering)
        if ordering.__class__ is tuple and len(_CURSOR_NAMES) < 64:  # orderings are few
            _CURSOR_NAMES[ordering] = names  # type: ignore[index]
    return [getattr(item, name) for name in names]


# The attribute each field of an ordering (a tuple, ``ORDER_ORDERING``) reads, by ordering.
_CURSOR_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


class _Edge:
    """An edge of a fetched page: what graphene's ``Edge`` ObjectType holds (``node``,
    ``cursor``), read by the same default resolvers, without its per-instance ``__init__``
    and with the cursor encoded only when it is read. A storefront page asks for
    ``pageInfo { endCursor }`` and rarely for every edge's cursor: encoding them all (JSON
    then base64 of the ordering values) cost more than walking the edges."""

    __slots__ = ("_cursor", "_ordering", "node")

    def __init__(self, node: Any, ordering: Sequence[str]) -> None:
        self.node = node
        self._ordering = ordering
        self._cursor: str | None = None

    @property
    def cursor(self) -> str:
        if self._cursor is None:
            self._cursor = encode_cursor(cursor_values(self.node, self._ordering))
        return self._cursor


class _PageInfo:
    """graphene's ``PageInfo`` values for one page; the start and end cursors are its first
    and last edges' (encoded when read, see ``_Edge``)."""

    __slots__ = ("_edges", "has_next_page", "has_previous_page")

    def __init__(self, edges: list[_Edge], has_next_page: bool, has_previous_page: bool) -> None:
        self._edges = edges
        self.has_next_page = has_next_page
        self.has_previous_page = has_previous_page

    @property
    def start_cursor(self) -> str | None:
        return self._edges[0].cursor if self._edges else None

    @property
    def end_cursor(self) -> str | None:
        return self._edges[-1].cursor if self._edges else None


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
    edges = [_Edge(item, ordering) for item in items]
    page_info = _PageInfo(
        edges,
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
