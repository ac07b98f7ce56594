"""Batched reads of the customer 360 projection: one SQL query per loader and request."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

from django.db import connections
from django.db.models import Count, DecimalField, F, Q, Sum, Window
from django.db.models.functions import RowNumber

from saleor_crm_plugin.core.rows import (
    Read,
    RowReader,
    Together,
    among,
    fetch_together,
    placeholders,
    together,
)
from saleor_crm_plugin.customers.models import (
    Customer,
    CustomerChannelStats,
    Order,
    OrderLine,
    OrderStatus,
)
from saleor_crm_plugin.graphql.core.connection import (
    build_connection,
    paginate_queryset,
    validate_page_args,
)
from saleor_crm_plugin.graphql.core.dataloaders import DataLoader, group_by_column

ORDER_ORDERING = ("-created_at", "-pk")


# The customer 360's own reads (``me`` and what hangs off it) skip Django's SQL compiler:
# see ``core/rows.py``. The other loaders are not on a per-request path and keep the ORM.
# Bookkeeping JSON (per-field versions, line attributes) is deferred: no resolver reads it,
# and decoding it was a tenth of a request's CPU.
CUSTOMERS = RowReader(Customer, defer=("field_versions",))
CHANNEL_STATS = RowReader(CustomerChannelStats)
ORDERS = RowReader(Order, defer=("field_versions",))
LINES = RowReader(OrderLine, defer=("attributes",))
# Lines read in their page's statement (``RowReader.fetch_page_with``): an alias of their own.
PAGE_LINES = RowReader(OrderLine, alias="l", defer=("attributes",))
# Channel stats joined to their customer (``RowReader.fetch_with``): an alias of their own.
JOINED_CHANNEL_STATS = RowReader(CustomerChannelStats, alias="s")
# The stats' order, as ``ChannelStatsByCustomerIdLoader`` reads them.
_STATS_ORDER = ("channel_slug", "currency", "id")


class CustomerByIdLoader(DataLoader[int, Customer | None]):
    context_key = "crm_customer_by_id"

    def batch_load(self, keys: list[int]) -> list[Customer | None]:
        rows = CUSTOMERS.fetch(
            f"t.id IN ({placeholders(keys)})", keys, only=self.columns_with("saleor_user_id")
        )
        customers = {c.pk: c for c in rows}
        return [customers.get(key) for key in keys]


class WithStats(NamedTuple):
    """Read each customer's channel stats with the customer, in the same statement
    (``CustomerByUserIdLoader``'s variant), reading ``columns`` of them (``None``: every
    column)."""

    columns: frozenset[str] | None


# Where a customer loader puts the customer's channel stats (``stats_loaded``).
_STATS_ATTR = "_crm_channel_stats"


def stats_loaded(customer: Customer) -> list[CustomerChannelStats] | None:
    """The channel stats read with ``customer`` (as ``ChannelStatsByCustomerIdLoader``
    answers them), or ``None`` when they were not (then ask that loader)."""
    return customer.__dict__.get(_STATS_ATTR)


class WithOrders(NamedTuple):
    """Read the customer's first page of orders (no cursor) with the customer, in the same
    statement (``CustomerByUserIdLoader``'s variant): what ``CrmCustomer.orders`` will ask
    ``OrdersPageByCustomerLoader`` for, the page's arguments, the columns of its orders and
    its lines (``WithLines``, or ``None``: not read along)."""

    first: int | None
    last: int | None
    channel: str | None
    include_drafts: bool
    columns: frozenset[str] | None
    lines: WithLines | None


# Where a customer loader puts the customer's orders page (``orders_loaded``).
_ORDERS_ATTR = "_crm_orders_page"


def orders_loaded(customer: Customer, asked: WithOrders) -> Any:
    """The orders page read with ``customer`` when it was read for just what ``asked``
    says (then it is the connection ``OrdersPageByCustomerLoader`` would answer), else
    ``None`` (then ask that loader)."""
    found = customer.__dict__.get(_ORDERS_ATTR)
    if found is not None and found[0] == asked:
        return found[1]
    return None


class CustomerByUserIdLoader(DataLoader[str, Customer | None]):
    """Customers by Saleor user ID. ``CustomerByUserIdLoader(context, columns,
    WithStats(stats_columns))`` also reads each customer's channel stats, joined in the
    same statement, as a plain list on the customer (``stats_loaded``): the customer 360
    then costs one round trip less, and its ``channelStats`` no promise.

    With ``WithOrders(...)`` too (or alone), a batch of one customer (``me``) reads the
    customer, its stats, its first orders page and that page's lines in one statement
    (``fetch_together``), the page left on the customer (``orders_loaded``): the whole
    customer 360 is one round trip, and its ``orders`` no promise."""

    context_key = "crm_customer_by_user_id"

    def __init__(self, context: Any, columns: frozenset[str] | None = None, *variant: Any) -> None:
        if getattr(self, "context", None) is not context:
            self.with_stats: WithStats | None = None
            self.with_orders: WithOrders | None = None
            for item in variant:
                if isinstance(item, WithStats):
                    self.with_stats = item
                elif isinstance(item, WithOrders):
                    self.with_orders = item
        super().__init__(context, columns, *variant)

    def batch_load(self, keys: list[str]) -> list[Customer | None]:
        if self.with_orders is not None and len(keys) == 1:
            return [self._with_orders(keys[0], self.with_orders)]
        where = f"t.saleor_user_id IN ({placeholders(keys)})"
        only = self.columns_with("saleor_user_id")
        if self.with_stats is None:
            rows = CUSTOMERS.fetch(where, keys, only=only)
        else:
            columns = self.with_stats.columns
            joined = CUSTOMERS.fetch_with(
                JOINED_CHANNEL_STATS,
                "customer",
                where,
                keys,
                order_by=", ".join(f"s.{name}" for name in _STATS_ORDER),
                only=only,
                child_only=_columns_with(columns, "customer_id"),
            )
            rows = []
            for customer, stats in joined:
                customer.__dict__[_STATS_ATTR] = stats
                rows.append(customer)
        customers = {c.saleor_user_id: c for c in rows}
        return [customers.get(key) for key in keys]

    def _with_orders(self, user_id: str, orders: WithOrders) -> Customer | None:
        """The customer of ``user_id`` with its stats (``with_stats``), its orders page and
        the page's lines, each read as its own loader reads it, in one statement. (One
        customer at most: ``saleor_user_id`` is unique, so the others compare its id with
        ``=``, an index lookup, where ``IN (SELECT ...)`` plans a hash aggregate.)"""
        first, last = validate_page_args({"first": orders.first, "last": orders.last}, "orders")
        size = first if first is not None else last
        assert size is not None
        where, params = _page_where(
            "t.customer_id = (SELECT customer.id FROM customer)",
            orders.channel,
            orders.include_drafts,
        )
        shape = (
            self.columns,
            self.with_stats,
            where,
            orders.last is not None,
            orders.columns,
            orders.lines,
            size,
        )
        known = _WITH_ORDERS_READS.get(shape)
        if known is None:
            template = self._with_orders_reads(orders, where, size)
            known = (template, together(template))
            if len(_WITH_ORDERS_READS) < _MAX_WITH_ORDERS_READS:  # clients choose selections
                _WITH_ORDERS_READS[shape] = known
        template, statement = known
        customer_read, *others = template
        page_index = len(template) - (2 if orders.lines is not None else 1)
        # ``Read(...)`` rather than ``_replace(params=...)``: the same tuple without
        # ``_replace``'s Python-level ``_make`` and keyword checks.
        reader, where, _, order_by, only, extra, limit, name = customer_read
        reads = [Read(reader, where, [user_id], order_by, only, extra, limit, name), *others]
        reader, where, _, order_by, only, extra, limit, name = reads[page_index]
        reads[page_index] = Read(reader, where, params, order_by, only, extra, limit, name)
        found = fetch_together(reads, statement)
        if not found[0]:
            return None
        (customer,) = found[0]
        if self.with_stats is not None:
            customer.__dict__[_STATS_ATTR] = found[1]
        page = found[-2] if orders.lines is not None else found[-1]
        if orders.lines is not None:
            _attach_page_lines(self.context, page[:size], found[-1])
        key = OrdersPageKey(
            customer.pk, first, last, None, None, orders.channel, orders.include_drafts
        )
        connection = _page_connection(key, page, size, OrdersPageByCustomerLoader.connection_type)
        customer.__dict__[_ORDERS_ATTR] = (orders, connection)
        return customer

    def _with_orders_reads(self, orders: WithOrders, where: str, size: int) -> list[Read]:
        """``_with_orders``'s reads for one shape, their parameters left empty (the user
        id and the page's are the request's): the SQL fragments, column sets and the
        ``fetch_together`` key they make are then the same objects at every request."""
        reads = [
            Read(
                CUSTOMERS,
                "t.saleor_user_id = %s",
                (),
                "t.id",
                self.columns_with("saleor_user_id"),
                name="customer",
            )
        ]
        if self.with_stats is not None:
            columns = self.with_stats.columns
            reads.append(
                Read(
                    JOINED_CHANNEL_STATS,
                    "s.customer_id = (SELECT customer.id FROM customer)",
                    (),
                    ", ".join(f"s.{name}" for name in _STATS_ORDER),
                    *_as_floats(
                        JOINED_CHANNEL_STATS,
                        "CrmCustomerChannelStats",
                        _columns_with(columns, "customer_id"),
                    ),
                )
            )
        only, extra = _as_floats(
            ORDERS,
            "CrmOrder",
            _columns_with(orders.columns, "customer_id", "created_at"),
            _PAGE_EXTRA,
        )
        reads.append(
            Read(
                ORDERS,
                where,
                (),
                _page_order(orders.last is not None),
                only,
                extra,
                size + 1,
                name="page",
            )
        )
        if orders.lines is not None:
            columns = orders.lines.columns
            reads.append(
                Read(
                    PAGE_LINES,
                    among("l.order_id", f"SELECT page.id FROM page WHERE page._n <= {int(size)}"),
                    (),
                    "l.id",
                    *_as_floats(PAGE_LINES, "CrmOrderLine", _columns_with(columns, "order_id")),
                )
            )
        return reads


# ``CustomerByUserIdLoader._with_orders``'s reads by shape (the loader's columns, its stats
# variant, the page's WHERE clause, direction, columns and lines variant, its size), with
# their ``fetch_together`` statement.
_WITH_ORDERS_READS: dict[tuple[Any, ...], tuple[list[Read], Together]] = {}
_MAX_WITH_ORDERS_READS = 256


class ChannelStatsByCustomerIdLoader(DataLoader[int, list[CustomerChannelStats]]):
    context_key = "crm_channel_stats_by_customer_id"

    def batch_load(self, keys: list[int]) -> list[list[CustomerChannelStats]]:
        rows = CHANNEL_STATS.fetch(
            f"t.customer_id IN ({placeholders(keys)})",
            keys,
            order_by="t.customer_id, " + ", ".join(f"t.{name}" for name in _STATS_ORDER),
            only=self.columns_with("customer_id"),
        )
        groups = group_by_column(rows, "customer_id")
        return [groups.get(key, []) for key in keys]


class OrderByIdLoader(DataLoader[int, Order | None]):
    context_key = "crm_order_by_id"

    def batch_load(self, keys: list[int]) -> list[Order | None]:
        orders = Order.objects.in_bulk(keys)
        return [orders.get(key) for key in keys]


class OrderBySaleorIdLoader(DataLoader[str, Order | None]):
    context_key = "crm_order_by_saleor_id"

    def batch_load(self, keys: list[str]) -> list[Order | None]:
        orders = Order.objects.in_bulk(keys, field_name="saleor_order_id")
        return [orders.get(key) for key in keys]


# ``line.order``'s key in the line's relation cache (what ``set_cached_value`` writes).
_ORDER_CACHE = OrderLine.order.field.cache_name


class LinesByOrderIdLoader(DataLoader[int, list[OrderLine]]):
    """Lines of orders, each line's ``order`` set to the order instance it was asked for
    (prices need its currency: no query per line). Use ``lines_of(order)``."""

    context_key = "crm_lines_by_order_id"

    def __init__(self, context: Any, columns: frozenset[str] | None = None) -> None:
        if getattr(self, "context", None) is not context:
            self.orders: dict[int, Order] = {}
        super().__init__(context, columns)

    def lines_of(self, order: Order) -> Any:
        """A promise of ``order``'s lines with ``line.order`` being ``order``. The lines are
        attached in ``batch_load``, so the common case (one instance per order and request)
        needs no ``then`` callback per order; another instance of an order already asked
        for gets the lines re-attached to it, as each resolver did before."""
        pk = order.pk
        first = self.orders.setdefault(pk, order)
        promise = self.load(pk)
        if first is order:
            return promise
        return promise.then(lambda lines: _attach(lines, order))

    def batch_load(self, keys: list[int]) -> list[list[OrderLine]]:
        rows = LINES.fetch(
            f"t.order_id IN ({placeholders(keys)})",
            keys,
            order_by="t.id",
            only=self.columns_with("order_id"),
        )
        groups = group_by_column(rows, "order_id")
        result = []
        for key in keys:
            lines = groups.get(key, [])
            order = self.orders.get(key)
            if order is not None:
                _attach(lines, order)
            result.append(lines)
        return result


def _attach(lines: list[OrderLine], order: Order) -> list[OrderLine]:
    # The lines are this order's (grouped by ``order_id``), so caching the relation is all
    # that ``line.order = order`` would do, without its checks (30 a customer 360).
    for line in lines:
        line._state.fields_cache[_ORDER_CACHE] = order
    return lines


class OrdersPageKey(NamedTuple):
    customer_id: int
    first: int | None
    last: int | None
    after: str | None
    before: str | None
    channel: str | None
    include_drafts: bool


def _orders(channel: str | None, include_drafts: bool) -> Any:
    queryset = Order.objects.all()
    if channel:
        queryset = queryset.filter(channel_slug=channel)
    if not include_drafts:
        queryset = queryset.exclude(status=OrderStatus.DRAFT)
    return queryset


class OrderCountLoader(DataLoader[tuple[int, str | None, bool], int]):
    context_key = "crm_order_count"

    def batch_load(self, keys: list[tuple[int, str | None, bool]]) -> list[int]:
        counts: dict[tuple[int, str | None, bool], int] = {}
        by_filter: dict[tuple[str | None, bool], list[int]] = defaultdict(list)
        for customer_id, channel, drafts in keys:
            by_filter[(channel, drafts)].append(customer_id)
        for (channel, drafts), ids in by_filter.items():
            rows = (
                _orders(channel, drafts)
                .filter(customer_id__in=ids)
                .values("customer_id")
                .annotate(n=Count("pk"))
                .order_by()
            )
            for row in rows:
                counts[(row["customer_id"], channel, drafts)] = row["n"]
        return [counts.get(key, 0) for key in keys]


class WithLines(NamedTuple):
    """Load the lines of a page's orders with the page (``OrdersPageByCustomerLoader``'s
    variant), reading ``columns`` of them (``None``: every column)."""

    columns: frozenset[str] | None


# Where a page loader puts each order's lines (``lines_loaded``).
_LINES_ATTR = "_crm_lines"


def lines_loaded(order: Order) -> list[OrderLine] | None:
    """The lines loaded with ``order``'s page (each line's ``order`` being ``order``), or
    ``None`` when its page did not load them (then ask ``LinesByOrderIdLoader``)."""
    return order.__dict__.get(_LINES_ATTR)


class OrdersPageByCustomerLoader(DataLoader[OrdersPageKey, Any]):
    """A page of each customer's orders. First pages (no cursor) of many customers come from
    one window-function query, so ``customers { orders(first: 5) }``-shaped documents (and
    federation ``_entities`` batches) cost the same few queries for 1 or 100 customers.

    ``OrdersPageByCustomerLoader(context, columns, WithLines(line_columns))`` also reads the
    lines of every order of its pages, in one more query, as plain lists on the orders
    (``lines_loaded``): the lines field then resolves at once, where a DataLoader costs a
    promise per order and one more executor level, in the same number of queries."""

    context_key = "crm_orders_page_by_customer"
    connection_type: Any = None  # set by the schema module (avoids an import cycle)

    def __init__(self, context: Any, columns: frozenset[str] | None = None, *variant: Any) -> None:
        if getattr(self, "context", None) is not context:
            self.with_lines: WithLines | None = variant[0] if variant else None
        super().__init__(context, columns, *variant)

    def batch_load(self, keys: list[OrdersPageKey]) -> list[Any]:
        results = self._pages(keys)
        if self.with_lines is not None:
            # Pages read in one statement with their lines (``_page_rows``) have them.
            self._load_lines(
                [
                    edge.node
                    for page in results
                    for edge in page.edges
                    if _LINES_ATTR not in edge.node.__dict__
                ]
            )
        return results

    def _load_lines(self, orders: list[Order]) -> None:
        """Every order's lines, ``line.order`` set to it (prices need its currency)."""
        if not orders:
            return
        assert self.with_lines is not None
        columns = self.with_lines.columns
        ids = list(dict.fromkeys(order.id for order in orders))
        rows = LINES.fetch(
            f"t.order_id IN ({placeholders(ids)})",
            ids,
            order_by="t.id",
            only=_columns_with(columns, "order_id"),
        )
        groups = group_by_column(rows, "order_id")
        links = self.context.links
        for order in orders:
            lines = groups.get(order.id)
            # An order met twice (two pages of one batch) shares its lines, attached to the
            # later instance: the same row, with the same columns.
            attributes = order.__dict__
            attributes[_LINES_ATTR] = [] if lines is None else _attach(lines, order)
            links.append((attributes, _LINES_ATTR))

    def _pages(self, keys: list[OrdersPageKey]) -> list[Any]:
        results: dict[OrdersPageKey, Any] = {}
        windowed: dict[tuple[Any, ...], list[OrdersPageKey]] = defaultdict(list)
        for key in keys:
            validate_page_args(key._asdict(), "orders")
            if key.after or key.before:
                results[key] = self._single(key)
            else:
                windowed[(key.first, key.last, key.channel, key.include_drafts)].append(key)
        for (first, last, channel, drafts), group in windowed.items():
            results.update(self._windowed(group, first, last, channel, drafts))
        return [results[key] for key in keys]

    def _count_fn(self, key: OrdersPageKey) -> Any:
        loader = OrderCountLoader(self.context)
        return lambda: loader.load((key.customer_id, key.channel, key.include_drafts))

    def _single(self, key: OrdersPageKey) -> Any:
        orders = _orders(key.channel, key.include_drafts).filter(customer_id=key.customer_id)
        connection = paginate_queryset(
            _only(orders, self.columns_with("customer_id", "created_at")),
            key._asdict(),
            ordering=ORDER_ORDERING,
            connection_type=self.connection_type,
            field_name="orders",
        )
        connection.count_fn = self._count_fn(key)
        return connection

    def _windowed(
        self,
        keys: list[OrdersPageKey],
        first: int | None,
        last: int | None,
        channel: str | None,
        drafts: bool,
    ) -> dict[OrdersPageKey, Any]:
        size = first if first is not None else last
        assert size is not None
        backwards = last is not None
        ordering = [F("created_at").desc(), F("pk").desc()]
        if backwards:
            ordering = [F("created_at").asc(), F("pk").asc()]
        customer_ids = {k.customer_id for k in keys}
        if len(customer_ids) == 1:
            # One customer (``me``, the hot path): a plain LIMIT query; COUNT(*) OVER () is
            # computed before the LIMIT, so it is the customer's total.
            where, params = _page_where("t.customer_id = %s", channel, drafts)
            rows = self._page_rows(
                where,
                [next(iter(customer_ids)), *params],
                order_by=_page_order(backwards),
                size=size,
            )
        else:
            rows = self._window_rows(
                customer_ids,
                size,
                ordering,
                channel,
                drafts,
                self.columns_with("customer_id", "created_at"),
            )
        groups = group_by_column(rows, "customer_id")
        return {
            key: _page_connection(key, groups.get(key.customer_id, []), size, self.connection_type)
            for key in keys
        }

    def _page_rows(self, where: str, params: list[Any], *, order_by: str, size: int) -> list[Order]:
        """One customer's page (one row beyond it, ``_total`` on each), with the lines of
        its ``size`` first orders in the same statement when the lines are read along
        (``RowReader.fetch_page_with``): the customer 360's orders cost one round trip."""
        only = self.columns_with("customer_id", "created_at")
        extra = _PAGE_EXTRA
        if self.with_lines is None:
            return ORDERS.fetch(
                where, params, order_by=order_by, limit=size + 1, extra=extra, only=only
            )
        columns = self.with_lines.columns
        rows, lines = ORDERS.fetch_page_with(
            PAGE_LINES,
            "order",
            where,
            params,
            order_by=order_by,
            limit=size + 1,
            children_of=size,
            child_order_by="l.id",
            extra=extra,
            only=only,
            child_only=_columns_with(columns, "order_id"),
        )
        _attach_page_lines(self.context, rows[:size], lines)
        return rows

    @staticmethod
    def _window_rows(
        customer_ids: set[int],
        size: int,
        ordering: list[Any],
        channel: str | None,
        drafts: bool,
        columns: frozenset[str] | None,
    ) -> list[Order]:
        return list(
            _only(_orders(channel, drafts), columns)
            .filter(customer_id__in=customer_ids)
            .annotate(
                _row=Window(RowNumber(), partition_by=[F("customer_id")], order_by=ordering),
                # totalCount in the same pass: the customer's rows are scanned anyway.
                _total=Window(Count("pk"), partition_by=[F("customer_id")]),
            )
            .filter(_row__lte=size + 1)
            .order_by("customer_id", "_row")
        )


# ``totalCount`` of a first page, read with it: COUNT(*) OVER () is computed before the LIMIT.
_PAGE_EXTRA = (("_total", "COUNT(*) OVER ()"),)


def _page_where(customer: str, channel: str | None, drafts: bool) -> tuple[str, list[Any]]:
    """The WHERE clause of one customer's orders (``customer``: SQL on ``t.customer_id``)
    and its parameters, as ``_orders`` filters them."""
    where = [customer]
    params: list[Any] = []
    if channel:
        where.append("t.channel_slug = %s")
        params.append(channel)
    if not drafts:
        where.append("t.status <> %s")
        params.append(OrderStatus.DRAFT.value)
    return " AND ".join(where), params


def _page_order(backwards: bool) -> str:
    direction = "ASC" if backwards else "DESC"
    return f"t.created_at {direction}, t.id {direction}"


def _columns_with(columns: frozenset[str] | None, *required: str) -> frozenset[str] | None:
    return None if columns is None else columns.union(required)


# Amount columns (``DecimalField``) of a GraphQL type's model that only its ``money_of``
# fields read, by type name: see ``_as_floats``.
_FLOAT_AMOUNTS: dict[str, frozenset[str]] = {}


def float_amounts(type_name: str, model: type[Any]) -> frozenset[str]:
    """The ``DecimalField`` attnames of ``model`` that no field of the GraphQL object type
    ``type_name`` reads but as the amount of its ``money_of`` resolver (which answers
    ``float(amount)``): empty when a field's reads are unknown (an unmarked resolver)."""
    found = _FLOAT_AMOUNTS.get(type_name)
    if found is not None:
        return found
    from saleor_crm_plugin.graphql.api import schema
    from saleor_crm_plugin.graphql.core.executor import money_amount
    from saleor_crm_plugin.graphql.core.selection import resolver_reads

    decimals = {f.attname for f in model._meta.concrete_fields if isinstance(f, DecimalField)}
    as_money: set[str] = set()
    otherwise: set[str] = set()
    for field_def in schema.get_type(type_name).fields.values():
        read = resolver_reads(field_def.resolver)
        if read is None:
            as_money.clear()
            break
        amount = money_amount(field_def.resolver)
        if amount is not None:
            as_money.add(amount)
        otherwise.update(name for name in read if name != amount)
    found = frozenset((as_money - otherwise) & decimals)
    _FLOAT_AMOUNTS[type_name] = found
    return found


def _as_floats(
    reader: RowReader[Any],
    type_name: str,
    only: frozenset[str] | None,
    extra: tuple[tuple[str, str], ...] = (),
) -> tuple[frozenset[str] | None, tuple[tuple[str, str], ...]]:
    """``only`` and ``extra`` of a read of the customer 360's one statement, the amounts
    only ``money_of`` fields read (``float_amounts``) moved from ``only`` to ``extra`` as
    ``float8`` columns of the same names: psycopg then gives a ``float``, not a ``Decimal``
    that the field converts with ``float()`` (parsing a numeric into a ``Decimal`` and
    converting it were ~3.5k instructions an amount, ~70 amounts a customer 360). The
    values are equal: PostgreSQL casts a numeric to ``float8`` through its text
    (correctly rounded, as ``float(Decimal)`` is) and sends the shortest text that reads
    back as the same double. PostgreSQL only (SQLite stores decimals as floats already)."""
    if only is None or connections[reader.using].vendor != "postgresql":
        return only, extra
    model_fields = reader.model._meta
    if not only <= {f.attname for f in model_fields.concrete_fields}:
        # Not only columns (``isSale`` reads the ``is_sale`` property): ``RowReader`` then
        # reads every column, and an amount cast under its own name as well would be an
        # ambiguous column of the statement (``column reference "total_refunded" is
        # ambiguous``, found by ``test_sql_render.py``).
        return only, extra
    floats = sorted(only & float_amounts(type_name, reader.model))
    if not floats:
        return only, extra
    quote = connections[reader.using].ops.quote_name
    cast = tuple(
        (name, f"{reader.alias}.{quote(model_fields.get_field(name).column)}::float8")
        for name in floats
    )
    return only.difference(floats), (*extra, *cast)


def _attach_page_lines(context: Any, orders: list[Order], lines: list[OrderLine]) -> None:
    """Leave on each order its lines among ``lines`` (``lines_loaded``), ``line.order``
    set to it; the request's ``context.release()`` cuts that cycle."""
    groups = group_by_column(lines, "order_id")
    links = context.links
    for order in orders:
        found = groups.get(order.id)
        attributes = order.__dict__
        attributes[_LINES_ATTR] = [] if found is None else _attach(found, order)
        links.append((attributes, _LINES_ATTR))


def _page_connection(key: OrdersPageKey, page: list[Order], size: int, connection_type: Any) -> Any:
    """The connection of a first page read with one row beyond it (``_total`` on each)."""
    has_more = len(page) > size
    items = page[:size]
    if key.last is not None:
        items.reverse()
    return build_connection(
        items,
        has_more=has_more,
        # What ``build_connection`` reads of the page's arguments (``_asdict`` makes them all).
        args={"last": key.last, "after": key.after, "before": key.before},
        ordering=ORDER_ORDERING,
        connection_type=connection_type,
        count_fn=_constant(page[0]._total if page else 0),
    )


_ORDER_ATTNAMES = frozenset(f.attname for f in Order._meta.concrete_fields)


def _only(queryset: Any, columns: frozenset[str] | None) -> Any:
    """``queryset`` reading the columns a selection needs (the primary key always), as
    ``ORDERS.fetch(only=...)`` does for the first pages; every column but the deferred
    bookkeeping when they are unknown (``None``, or a name that is not a column)."""
    if columns is None or not columns <= _ORDER_ATTNAMES:
        return queryset.defer(*ORDERS.defer)
    return queryset.only(*columns)


def _constant(value: int) -> Callable[[], int]:
    return lambda: value


class ProductStats(NamedTuple):
    order_count: int
    customer_count: int
    units_sold: int
    units_refunded: int


class ProductStatsLoader(DataLoader[tuple[str, str | None], ProductStats]):
    """Sales of each product (optionally in one channel), counted over real sales only."""

    context_key = "crm_product_stats"

    def batch_load(self, keys: list[tuple[str, str | None]]) -> list[ProductStats]:
        found: dict[tuple[str, str | None], ProductStats] = {}
        by_channel: dict[str | None, list[str]] = defaultdict(list)
        for product_id, channel in keys:
            by_channel[channel].append(product_id)
        for channel, product_ids in by_channel.items():
            lines = OrderLine.objects.filter(product_id__in=product_ids).exclude(
                order__status__in=[OrderStatus.DRAFT, OrderStatus.CANCELED, OrderStatus.EXPIRED]
            )
            if channel:
                lines = lines.filter(order__channel_slug=channel)
            rows = (
                lines.values("product_id")
                .annotate(
                    orders=Count("order_id", distinct=True),
                    customers=Count(
                        "order__customer_id",
                        distinct=True,
                        filter=Q(order__customer_id__isnull=False),
                    ),
                    sold=Sum("quantity"),
                    refunded=Sum("quantity_refunded"),
                )
                .order_by()
            )
            for row in rows:
                found[(row["product_id"], channel)] = ProductStats(
                    row["orders"], row["customers"], row["sold"] or 0, row["refunded"] or 0
                )
        return [found.get(key, ProductStats(0, 0, 0, 0)) for key in keys]
