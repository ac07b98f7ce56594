"""The customer 360 answered by PostgreSQL: ``me`` rendered to its finished JSON by one
statement (the PostGraphile/Hasura approach), for the documents this module fully
understands.

Why: the lean executor spends most of a customer 360's CPU building model instances from
rows, walking its compiled plan over them and freeing them again (issue 3). Here the
document's selection under ``me`` is compiled once per document and operation into one
``SELECT`` whose single text column is the JSON of the whole ``data`` object; the view
sends it as it comes (``orjson.Fragment``), no Python object per row or field.

Fallback rule: ``compile_operation`` answers ``None`` for anything it does not know, and the
view then runs the executors as before: unknown fields (other domains' ``Customer``
extensions, ``user``, ``product``, ``customer``), arguments but the supported ones
(``orders(first:, channel:)``; ``after``/``before``/``last`` only when null), directives,
fragments on another type (an interface, a union), variables other than those arguments,
introspection but ``__typename``, mutations, root fields but ``me`` and ``__typename``, and
any database but PostgreSQL (the demo's SQLite). At
each request ``render`` also gives up (``None``) before touching the database for an
anonymous caller (the executors answer ``me: null`` and any error), a variable of an
unexpected type, or a page size outside ``0..GRAPHQL_MAX_PAGE_SIZE`` (the executors report
the error). After the statement it gives up for the only values whose text PostgreSQL does
not write as the executors do: see ``_EXOTIC``.

Every SQL identifier comes from this module's field maps; the caller's user id, the page
arguments and the drafts flag are bound parameters, and the only customer row ever read is
the one whose ``saleor_user_id`` is the authenticated requester's (``me``).

Each mapped field names the resolver it mirrors (``customers/types.py``);
``tests/graphql/test_sql_render.py`` compares the response bytes of both paths over
generated documents and data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from django.db import connections
from django.db.models import Model
from graphql.language import ast

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.rows import select_rows
from saleor_crm_plugin.customers.models import (
    NON_SALE_STATUSES,
    Customer,
    CustomerChannelStats,
    Order,
    OrderLine,
    OrderStatus,
)
from saleor_crm_plugin.permissions import ORDER_READ

# Tests switch the SQL rendering off to compare its answers with the executors'.
SQL_RENDER = {"enabled": True}

_CUSTOMERS = Customer._meta.db_table
_STATS = CustomerChannelStats._meta.db_table
_ORDERS = Order._meta.db_table
_LINES = OrderLine._meta.db_table

# What PostgreSQL writes in place of a value whose text would differ from the executors'
# (``_amount``): a control character, which ``to_json`` always escapes, so in the answer it
# can only come from here. ``render`` then answers ``None`` and the view falls back.
_EXOTIC = "\x01"
# From this magnitude on the double of an amount may be 1e15 or more (999999999999999.999
# is 1e15 as a float8), where PostgreSQL's ``float8`` text switches to an exponent (orjson
# only from 1e16, and spells it differently); amounts are ``numeric(20, 3)``, up to 1e17.
_POSITIONAL_LIMIT = "999999999999999"
# Below 10**12 an amount has at most 15 significant digits (``numeric(20, 3)``), which a
# double keeps (``DBL_DIG``): its shortest ``float8`` text is the numeric's own digits, the
# trailing zeros of its scale dropped (``trim_scale``), and no float conversion is needed.
_DIGITS_LIMIT = "1000000000000"


def _literal(text: str) -> str:
    """``text`` as an SQL string literal (standard strings: only ``'`` is special)."""
    return "'" + text.replace("'", "''") + "'"


class _Lit(str):
    """The text of an SQL string literal not yet written: in a concatenation adjacent ones
    are written as one literal (``_chain``), so ``'{"node":' || '{"orderId":'`` costs no
    ``textcat`` node to set up at each execution, nor a copy per row."""


# The SQL of a JSON text: one SQL expression, or the pieces of a concatenation (SQL
# expressions and ``_Lit``) that an enclosing object or array can merge its literals with.
_Text = str | list[str]


def _pieces(text: _Text) -> list[str]:
    return text if isinstance(text, list) else [text]


def _chain(text: _Text) -> str:
    """The SQL of ``text``: its pieces joined by ``||``, adjacent literals merged."""
    merged: list[str] = []
    for piece in _pieces(text):
        if isinstance(piece, _Lit) and merged and isinstance(merged[-1], _Lit):
            merged[-1] = _Lit(merged[-1] + piece)
        else:
            merged.append(piece)
    if not merged:
        return "''"
    return " || ".join(_literal(piece) if isinstance(piece, _Lit) else piece for piece in merged)


def _key(name: str) -> str:
    """The JSON text of an object key (a GraphQL name or alias)."""
    return orjson.dumps(name).decode()


def _string(column: str) -> str:
    # ``to_json`` escapes exactly as orjson does (``"``, ``\\``, controls as ``\\uXXXX``
    # or their short forms; other characters as UTF-8): compared in the tests.
    return f"coalesce({_string_not_null(column)}, 'null')"


def _string_not_null(column: str) -> str:
    # ``_string`` of a NOT NULL column (``_c``): no ``coalesce`` to set up and run.
    return f"to_json({column})::text"


def _string_or_null(column: str) -> str:
    # ``or_none``: an empty string answers null (``resolve_voucher_code``, ``resolve_product_id``).
    return f"coalesce(to_json(nullif({column}, ''))::text, 'null')"


def _int(column: str) -> str:
    # ``_int32``: the columns are ``integer`` (always 32-bit) or counts of a customer's rows.
    return f"coalesce({_int_not_null(column)}, 'null')"


def _int_not_null(column: str) -> str:
    return f"({column})::text"


def _bool(expression: str) -> str:
    return (
        f"CASE WHEN {expression} THEN 'true' WHEN NOT ({expression}) THEN 'false' ELSE 'null' END"
    )


def _datetime_text(column: str) -> str:
    """The text of ``value.isoformat()`` for a UTC ``timestamptz`` (the session time zone
    Django sets with ``USE_TZ``): microseconds only when not zero, ``+00:00``; NULL for
    NULL (graphene's DateTime, ``executor._isoformat``).

    One ``to_char`` with the microseconds, then ``.000000`` dropped: a third fewer
    expression nodes and one conversion instead of three. ``.000000+`` can only be the
    microseconds before the offset (the date and time parts hold no ``.``). ``AT TIME ZONE
    INTERVAL '00:00'`` is UTC's wall clock as ``AT TIME ZONE 'UTC'`` gives it (UTC has no
    transitions), without looking the zone up by name."""
    utc = f"({column} AT TIME ZONE INTERVAL '00:00')"
    return f"replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), '.000000+', '+')"


def _datetime(column: str) -> str:
    return f"coalesce({_datetime_not_null(column)}, 'null')"


def _datetime_not_null(column: str) -> str:
    """``_datetime_text`` in JSON quotes, which ``to_char`` writes itself (``\\"``: a
    double quote in its format), instead of two concatenations."""
    utc = f"({column} AT TIME ZONE INTERVAL '00:00')"
    return (
        f'replace(to_char({utc}, \'\\"YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\\"\'), '
        "'.000000+', '+')"
    )


def _amount_written(column: str) -> str:
    """Whether the amount in ``column`` is below ``_DIGITS_LIMIT`` (``_amount_digits``'
    range): one comparison of its absolute value instead of two."""
    return f"abs({column}) < {_DIGITS_LIMIT}"


def _amount_digits(column: str) -> str:
    """``float(amount)`` as orjson writes it, for an amount below ``_DIGITS_LIMIT``: the
    numeric's own digits, its scale's trailing zeros dropped (``trim_scale``), and at
    least one decimal (``+ 0.0``: a sum's scale is the larger of the two), so ``12.000``
    is ``12.0`` as orjson writes the float 12, ``42.490`` is ``42.49``. Three function
    nodes, no ``float8``, no branch (feat/g11's form tested ``min_scale`` and wrote
    integral amounts through ``int8``: eight)."""
    return f"(trim_scale({column}) + 0.0)::text"


def _amount(column: str) -> str:
    """``float(amount)`` as orjson writes it, for the ``float8`` the executors read
    (``dataloaders._as_floats``). Below ``_DIGITS_LIMIT`` (the common branch, first)
    ``_amount_digits``; above, PostgreSQL's shortest ``float8`` text (the same digits as
    orjson's, positional below 1e15) with ``.0`` when the double is integral (a fraction
    may round away: 293331960594306.992 is the double 293331960594307). From
    ``_POSITIONAL_LIMIT`` on: ``_EXOTIC``."""
    as_float = f"({column})::float8"
    return (
        f"CASE WHEN {_amount_written(column)} THEN {_amount_digits(column)} "
        f"WHEN abs({column}) >= {_POSITIONAL_LIMIT} THEN {_literal(_EXOTIC)} "
        f"WHEN {as_float} = trunc({as_float}) THEN {as_float}::text || '.0' "
        f"ELSE {as_float}::text END"
    )


def _global_id(type_name: str, column: str) -> _Text:
    """graphene's Node ``id``: base64 of ``Type:pk``. At most 12 + 19 bytes, so
    PostgreSQL's base64 (a line break every 76 characters) is one line."""
    encoded = f"encode(convert_to('{type_name}:' || {column}::text, 'UTF8'), 'base64')"
    return [_Lit('"'), encoded, _Lit('"')]


def _cursor(created_at: str, pk: str) -> str:
    """``encode_cursor((created_at, pk))``: base64 of ``["<isoformat>", <pk>]``. At most
    2 + 32 + 3 + 19 + 1 = 57 bytes, 76 characters of base64: one line."""
    text = f"'[\"' || {_datetime_text(created_at)} || '\", ' || {pk}::text || ']'"
    return f"encode(convert_to({text}, 'UTF8'), 'base64')"


class Unsupported(Exception):
    """The compiler does not know this shape: the executors answer it."""


# -- compiling a selection -------------------------------------------------------------------


class _Scope:
    """What one compiled statement needs at each request: its named parameters as
    functions of the request (``requester``, ``variables``), and checks that raise ``_Bad``
    where the executors must answer instead."""

    def __init__(self, document: ast.Document, operation: ast.OperationDefinition) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, ast.FragmentDefinition)
        }
        self.variables = {v.variable.name.value: v for v in operation.variable_definitions or ()}
        self.params: dict[str, Callable[[Any, dict[str, Any]], Any]] = {}
        self.checks: list[Callable[[dict[str, Any]], Any]] = []

    def bind(self, name: str, value: Callable[[Any, dict[str, Any]], Any]) -> str:
        """A placeholder for a parameter (``name``: this module's, unique per statement)."""
        self.params[name] = value
        return f"%({name})s"

    def unique(self, prefix: str) -> str:
        return f"{prefix}{len(self.params)}"

    def argument(self, value: ast.Node, kind: type) -> Callable[[dict[str, Any]], Any]:
        """A function of the request's variables giving the argument's value: a literal of
        ``kind`` (an ``int`` or a ``str``; graphql-core 2 has no null literal), or a
        variable (its default when absent).
        That function raises ``_Bad`` when the value is neither of ``kind`` nor null."""
        if kind is int and isinstance(value, ast.IntValue):
            number = int(value.value)
            return lambda variables: number
        if kind is str and isinstance(value, ast.StringValue):
            text = value.value
            return lambda variables: text
        if isinstance(value, ast.Variable):
            name = value.name.value
            definition = self.variables.get(name)
            if definition is None:
                raise Unsupported("undefined variable")
            default: Any = None
            if definition.default_value is not None:
                default = self.argument(definition.default_value, kind)({})

            def read(variables: dict[str, Any]) -> Any:
                # graphql-core 2 (``get_variable_values``) gives a variable sent as null
                # its default too, as if absent (found by feat/g11's generated data).
                found = variables.get(name) if variables else None
                if found is None:
                    found = default
                if found is None or found.__class__ is kind:
                    return found
                raise _Bad(name)

            return read
        raise Unsupported("argument value")

    def collect(self, selection_set: ast.SelectionSet | None, type_name: str) -> dict[str, list]:
        """``collect_fields`` of graphql-core for a concrete object type: fields by
        response key in first-seen order, fragments on ``type_name`` (or untyped) merged.
        Anything else, and every directive, is ``Unsupported``."""
        fields: dict[str, list[ast.Field]] = {}
        seen: set[str] = set()

        def walk(selections: Any) -> None:
            for selection in selections or ():
                if selection.directives:
                    raise Unsupported("directive")
                if isinstance(selection, ast.Field):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, ast.InlineFragment):
                    condition = selection.type_condition
                    if condition is not None and condition.name.value != type_name:
                        raise Unsupported("fragment on another type")
                    walk(selection.selection_set.selections)
                elif isinstance(selection, ast.FragmentSpread):
                    name = selection.name.value
                    if name in seen:
                        continue
                    seen.add(name)
                    fragment = self.fragments.get(name)
                    if fragment is None or fragment.directives:
                        raise Unsupported("fragment")
                    if fragment.type_condition.name.value != type_name:
                        raise Unsupported("fragment on another type")
                    walk(fragment.selection_set.selections)
                else:
                    raise Unsupported("selection")

        walk(selection_set.selections if selection_set is not None else ())
        return fields


class _Bad(Exception):
    """A request's variable the statement cannot bind: the executors answer it."""


def _arguments(nodes: list[ast.Field]) -> dict[str, ast.Node]:
    # Validation (``OverlappingFieldsCanBeMerged``) makes merged fields' arguments equal.
    return {argument.name.value: argument.value for argument in nodes[0].arguments or ()}


def _no_arguments(nodes: list[ast.Field]) -> None:
    if nodes[0].arguments:
        raise Unsupported("arguments")


def _merged(nodes: list[ast.Field]) -> ast.SelectionSet:
    return ast.SelectionSet(
        selections=[s for node in nodes for s in (node.selection_set.selections or ())]
        if all(node.selection_set is not None for node in nodes)
        else []
    )


def _object(parts: list[tuple[str, _Text]]) -> _Text:
    """The pieces of a JSON object's text from ``(key, the value's JSON text)``."""
    if not parts:
        return [_Lit("{}")]
    pieces: list[str] = []
    for index, (key, value) in enumerate(parts):
        pieces.append(_Lit(("{" if index == 0 else ",") + _key(key) + ":"))
        pieces.extend(_pieces(value))
    pieces.append(_Lit("}"))
    return pieces


# A leaf: the SQL of its JSON text given the row's alias.
_Leaf = Callable[[str], _Text]
# An object field: its JSON text given the scope, its field nodes and the row's alias.
_Build = Callable[["_Scope", list[ast.Field], str], _Text]


def _leaves(
    scope: _Scope,
    type_name: str,
    selection: ast.SelectionSet,
    leaves: dict[str, _Leaf],
    objects: dict[str, _Build],
    alias: str,
) -> _Text:
    parts: list[tuple[str, _Text]] = []
    for key, nodes in scope.collect(selection, type_name).items():
        name = nodes[0].name.value
        if name == "__typename":
            parts.append((key, [_Lit(_key(type_name))]))
            continue
        leaf = leaves.get(name)
        if leaf is not None:
            _no_arguments(nodes)
            parts.append((key, leaf(alias)))
            continue
        build = objects.get(name)
        if build is None:
            raise Unsupported(f"{type_name}.{name}")
        parts.append((key, build(scope, nodes, alias)))
    return _object(parts)


def _money(model: type[Model], amount: str, currency: str) -> _Build:
    """A ``CrmMoney`` field (``money(amount, currency)``: null for a null amount) of
    ``model``'s amount column ``amount``, in the currency of ``currency`` (the SQL of a NOT
    NULL column given relative to the row's alias, ``{a}``).

    Only a nullable amount is tested for NULL (line prices, stats' and orders' charged and
    refunded amounts are NOT NULL): a ``CASE`` and a null test fewer to set up per money
    field at each execution."""
    nullable = _field(model, amount).null

    def build(scope: _Scope, nodes: list[ast.Field], alias: str) -> _Text:
        _no_arguments(nodes)
        amount_column = _column(alias, amount)
        currency_column = currency.format(a=alias)
        inner = _leaves(
            scope,
            "CrmMoney",
            _merged(nodes),
            {
                "amount": lambda _: _amount(amount_column),
                "currency": lambda _: _string_not_null(currency_column),
            },
            {},
            alias,
        )
        if nullable:
            return f"CASE WHEN {amount_column} IS NULL THEN 'null' ELSE {_chain(inner)} END"
        return inner

    return build


def _quote(name: str) -> str:
    return connections["default"].ops.quote_name(name)


def _column(alias: str, name: str) -> str:
    return f"{alias}.{_quote(name)}"


def _columns_of(sql: str, alias: str, model: type[Model]) -> list[str]:
    """The columns of ``model`` that ``sql`` reads through ``alias`` (``p.id``,
    ``p."number"``), in first-use order: the page's subquery passes only these up through
    its WindowAgg, Limit and Aggregate, where ``o.*`` made each of them copy and deform
    every column of the order's wide row (-2.8% of the statement's instructions). A name
    that is not a column of ``model`` (``p._n``, a word in a literal) is left out; one
    missed would be an SQL error, which the generated-document tests would show."""
    known = {field.column for field in model._meta.concrete_fields}
    used = (match.group(2) for match in re.finditer(rf'\b{alias}\.("?)(\w+)\1', sql))
    return [column for column in dict.fromkeys(used) if column in known]


# The forms of column leaves for a NOT NULL column: the same text, no ``coalesce``.
_NOT_NULL_FORMS: dict[Callable[[str], str], Callable[[str], str]] = {
    _string: _string_not_null,
    _int: _int_not_null,
    _datetime: _datetime_not_null,
}


def _field(model: type[Model], name: str) -> Any:
    return next(f for f in model._meta.concrete_fields if f.column == name)


def _c(model: type[Model], name: str, render: Callable[[str], str]) -> _Leaf:
    """The leaf of ``model``'s column ``name``; for a NOT NULL one (``null=False``, which
    Django's migrations make NOT NULL) its form without ``coalesce``: a coalesce per value
    and two expression nodes per field set up at each execution, ~1% of the statement."""
    if not _field(model, name).null:
        render = _NOT_NULL_FORMS.get(render, render)
    return lambda alias: render(_column(alias, name))


# ``CrmCustomerChannelStats`` (no resolvers but ``resolve_total_spent`` and
# ``resolve_total_refunded``: money in the stats' currency).
_STATS_LEAVES: dict[str, _Leaf] = {
    "channelId": _c(CustomerChannelStats, "channel_id", _string),
    "channelSlug": _c(CustomerChannelStats, "channel_slug", _string),
    "currency": _c(CustomerChannelStats, "currency", _string),
    "orderCount": _c(CustomerChannelStats, "order_count", _int),
    "firstOrderAt": _c(CustomerChannelStats, "first_order_at", _datetime),
    "lastOrderAt": _c(CustomerChannelStats, "last_order_at", _datetime),
}
_STATS_OBJECTS = {
    "totalSpent": _money(CustomerChannelStats, "total_spent", "{a}.currency"),
    "totalRefunded": _money(CustomerChannelStats, "total_refunded", "{a}.currency"),
}

# ``CrmOrderLine``: ``resolve_line_id``, ``resolve_product_id`` and ``resolve_variant_id``
# (``or_none``), prices in the line's order's currency (``_line_currency``; ``{o}`` below).
_LINE_LEAVES: dict[str, _Leaf] = {
    "lineId": _c(OrderLine, "saleor_line_id", _string),
    "productId": _c(OrderLine, "product_id", _string_or_null),
    "variantId": _c(OrderLine, "variant_id", _string_or_null),
    "productName": _c(OrderLine, "product_name", _string),
    "variantName": _c(OrderLine, "variant_name", _string),
    "sku": _c(OrderLine, "sku", _string),
    "quantity": _c(OrderLine, "quantity", _int),
    "quantityFulfilled": _c(OrderLine, "quantity_fulfilled", _int),
    "quantityRefunded": _c(OrderLine, "quantity_refunded", _int),
}
_LINE_MONEY = {
    "unitPrice": "unit_price_gross",
    "unitPriceNet": "unit_price_net",
    "totalPrice": "total_price_gross",
}

# ``CrmOrderStatus`` answers a status by its name, the status itself; a value it does not
# list would be an error there: ``_EXOTIC`` here.
_STATUSES = ", ".join(_literal(status.value) for status in OrderStatus)
_NON_SALE = ", ".join(_literal(str(status.value)) for status in NON_SALE_STATUSES)


def _status(column: str) -> str:
    exotic = _literal(_EXOTIC)
    # A listed status is one of these literals (capitals and ``_``): quoted as it is,
    # without ``to_json``'s per-call type look-ups.
    return f"CASE WHEN {column} IN ({_STATUSES}) THEN '\"' || {column} || '\"' ELSE {exotic} END"


def _is_sale(column: str) -> str:
    # ``Order.is_sale``.
    return f"CASE WHEN {column} IN ({_NON_SALE}) THEN 'false' ELSE 'true' END"


# ``CrmOrder``: ``resolve_order_id``, ``resolve_voucher_code`` (``or_none``), the
# ``_order_money`` fields (money in the order's currency), ``id`` (Node).
_ORDER_LEAVES: dict[str, _Leaf] = {
    "id": lambda alias: _global_id("CrmOrder", f"{alias}.id"),
    "orderId": _c(Order, "saleor_order_id", _string),
    "number": _c(Order, "number", _string),
    "status": _c(Order, "status", _status),
    "chargeStatus": _c(Order, "charge_status", _string),
    "channelId": _c(Order, "channel_id", _string),
    "channelSlug": _c(Order, "channel_slug", _string),
    "currency": _c(Order, "currency", _string),
    "isSale": _c(Order, "status", _is_sale),
    "voucherCode": _c(Order, "voucher_code", _string_or_null),
    "createdAt": _c(Order, "created_at", _datetime),
    "paidAt": _c(Order, "paid_at", _datetime),
    "fulfilledAt": _c(Order, "fulfilled_at", _datetime),
    "cancelledAt": _c(Order, "cancelled_at", _datetime),
}
_ORDER_MONEY = {
    "total": "total_gross",
    "totalNet": "total_net",
    "subtotal": "subtotal_gross",
    "shippingPrice": "shipping_gross",
    "totalCharged": "total_charged",
    "totalRefunded": "total_refunded",
}


def _array(element: _Text, rest: str) -> _Text:
    """The JSON array of ``element`` over the rows of ``SELECT element FROM <rest>``, in
    its ``ORDER BY``: ``ARRAY(subquery)`` keeps the subquery's row order, and its Sort
    costs less than a ``string_agg(... ORDER BY ...)``'s own sort (~1% of the statement).
    Elements are never NULL (texts built of non-null parts), so ``array_to_string``
    drops none; an empty array gives ``[]``."""
    items = f"array_to_string(ARRAY(SELECT {_chain(element)} FROM {rest}), ',')"
    return [_Lit("["), items, _Lit("]")]


def _lines(scope: _Scope, nodes: list[ast.Field], alias: str) -> _Text:
    """``resolve_lines``: every line of the order, by ``id`` (``lines_loaded``)."""
    _no_arguments(nodes)
    objects = {
        name: _money(OrderLine, column, f"{alias}.currency") for name, column in _LINE_MONEY.items()
    }
    line = _leaves(scope, "CrmOrderLine", _merged(nodes), _LINE_LEAVES, objects, "l")
    return _array(line, f"{_LINES} l WHERE l.order_id = {alias}.id ORDER BY l.id")


_ORDER_OBJECTS: dict[str, _Build] = {
    **{name: _money(Order, column, "{a}.currency") for name, column in _ORDER_MONEY.items()},
    "lines": _lines,
}


def _channel_stats(scope: _Scope, nodes: list[ast.Field], alias: str) -> _Text:
    """``resolve_channel_stats``: the customer's stats by channel slug, currency, id
    (``_STATS_ORDER``)."""
    _no_arguments(nodes)
    stat = _leaves(
        scope, "CrmCustomerChannelStats", _merged(nodes), _STATS_LEAVES, _STATS_OBJECTS, "s"
    )
    return _array(
        stat,
        f"{_STATS} s WHERE s.customer_id = {alias}.id ORDER BY s.channel_slug, s.currency, s.id",
    )


# The page's one window: the row number in ``ORDER_ORDERING`` and, over the whole frame,
# the count before the LIMIT (``_PAGE_EXTRA``). One definition, so one WindowAgg node:
# ``row_number() OVER (ORDER BY ...)`` next to ``count(*) OVER ()`` were two (each with
# its tuplestore, set up and filled at each execution), 2.6% of the statement's
# instructions. ``row_number`` ignores the frame.
_PAGE_WINDOW = (
    "(ORDER BY o.created_at DESC, o.id DESC "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
)


def _orders(scope: _Scope, nodes: list[ast.Field], alias: str) -> _Text:
    """``resolve_orders`` for a first page (no cursor): the orders newest first
    (``ORDER_ORDERING``), drafts only for ``ORDER_READ`` (``_page_where``), ``first`` of
    them with ``totalCount`` and ``pageInfo`` as ``_page_connection`` makes them."""
    arguments = _arguments(nodes)
    if set(arguments) - {"first", "after", "before", "last", "channel"}:
        raise Unsupported("orders argument")
    if "first" not in arguments:
        raise Unsupported("orders without first")
    for name in ("after", "before", "last"):
        if name in arguments:
            if not isinstance(arguments[name], ast.Variable):  # a literal cursor or ``last``
                raise Unsupported(f"orders({name}:)")
            value = scope.argument(arguments[name], int if name == "last" else str)

            def must_be_null(variables: dict[str, Any], value: Any = value) -> None:
                if value(variables) is not None:
                    raise _Bad("page argument")

            scope.checks.append(must_be_null)
    first = scope.argument(arguments["first"], int)

    def page_size(requester: Any, variables: dict[str, Any]) -> int:
        # Where ``validate_page_args`` would refuse ``first``, the executors report it.
        size = first(variables)
        if size is None or size < 0 or size > crm_settings.GRAPHQL_MAX_PAGE_SIZE:
            raise _Bad("first")
        return size

    size = scope.bind(scope.unique("size"), page_size)
    where = [f"o.customer_id = {alias}.id"]
    if "channel" in arguments:
        read_channel = scope.argument(arguments["channel"], str)
        # ``if channel:`` in ``_page_where``: no slug, or an empty one, filters nothing.
        channel = scope.bind(scope.unique("channel"), lambda r, v: read_channel(v) or None)
        where.append(f"({channel}::text IS NULL OR o.channel_slug = {channel}::text)")
    drafts = scope.bind("drafts", lambda requester, variables: requester.has_perm(ORDER_READ))
    where.append(f"({drafts}::bool OR o.status <> {_literal(OrderStatus.DRAFT.value)})")

    connection = _leaves(
        scope,
        "CrmOrderCountableConnection",
        _merged(nodes),
        # ``COUNT(*) OVER ()`` before the LIMIT (``_PAGE_EXTRA``); 0 without rows.
        {"totalCount": lambda _: "coalesce(max(p._total), 0)::text"},
        {
            "pageInfo": lambda scope, nodes, _: _page_info(scope, nodes, size),
            "edges": lambda scope, nodes, _: _edges(scope, nodes, size),
        },
        "p",
    )
    sql = _chain(connection)
    columns = "".join(f"o.{_quote(column)}, " for column in _columns_of(sql, "p", Order))
    return (
        f"(SELECT {sql} FROM (SELECT {columns}"
        f"row_number() OVER w AS _n, count(*) OVER w AS _total FROM {_ORDERS} o "
        f"WHERE {' AND '.join(where)} WINDOW w AS {_PAGE_WINDOW} "
        # ``GROUP BY ()``: one row even when the selection holds no aggregate.
        f"ORDER BY o.created_at DESC, o.id DESC LIMIT {size}::int8 + 1) p GROUP BY ())"
    )


def _page_info(scope: _Scope, nodes: list[ast.Field], size: str) -> _Text:
    """``_PageInfo`` of a first page: a previous page never, a next one when the row
    beyond the page came, the cursors of its first and last edges (null without edges)."""
    _no_arguments(nodes)

    def cursor(row: str) -> str:
        # The first edge's row, or the last's (``least``: a page shorter than ``first``),
        # its cursor written for that row alone (``FILTER`` comes before the argument).
        value = f"max({_cursor('p.created_at', 'p.id')}) FILTER (WHERE {row})"
        return f"coalesce('\"' || {value} || '\"', 'null')"

    return _leaves(
        scope,
        "PageInfo",
        _merged(nodes),
        {
            "hasPreviousPage": lambda _: [_Lit("false")],
            "hasNextPage": lambda _: (
                f"CASE WHEN count(*) > {size}::int8 THEN 'true' ELSE 'false' END"
            ),
            "startCursor": lambda _: cursor(f"p._n = 1 AND {size}::int8 > 0"),
            "endCursor": lambda _: cursor(f"p._n = least(p._total, {size}::int8)"),
        },
        {},
        "p",
    )


def _edges(scope: _Scope, nodes: list[ast.Field], size: str) -> _Text:
    """The page's edges (``_Edge``): its first ``first`` rows, newest first."""
    _no_arguments(nodes)
    edge = _leaves(
        scope,
        "CrmOrderCountableEdge",
        _merged(nodes),
        {
            "cursor": lambda alias: [
                _Lit('"'),
                _cursor(f"{alias}.created_at", f"{alias}.id"),
                _Lit('"'),
            ]
        },
        {"node": _order_node},
        "p",
    )
    items = (
        f"coalesce(string_agg({_chain(edge)}, ',' ORDER BY p._n) "
        f"FILTER (WHERE p._n <= {size}::int8), '')"
    )
    return [_Lit("["), items, _Lit("]")]


def _order_node(scope: _Scope, nodes: list[ast.Field], alias: str) -> _Text:
    _no_arguments(nodes)
    return _leaves(scope, "CrmOrder", _merged(nodes), _ORDER_LEAVES, _ORDER_OBJECTS, alias)


# ``CrmCustomer``: ``resolve_user_id``, ``resolve_is_guest`` (``Customer.is_guest``),
# ``id`` (Node), the columns of the same names.
_CUSTOMER_LEAVES: dict[str, _Leaf] = {
    "id": lambda alias: _global_id("CrmCustomer", f"{alias}.id"),
    "userId": _c(Customer, "saleor_user_id", _string),
    "email": _c(Customer, "email", _string),
    "firstName": _c(Customer, "first_name", _string),
    "lastName": _c(Customer, "last_name", _string),
    "isGuest": lambda alias: _bool(f"{alias}.saleor_user_id IS NULL"),
    "isActive": _c(Customer, "is_active", _bool),
    "languageCode": _c(Customer, "language_code", _string),
    "countryCode": _c(Customer, "country_code", _string),
    "dateJoined": _c(Customer, "date_joined", _datetime),
    "erasedAt": _c(Customer, "erased_at", _datetime),
    "orderCount": _c(Customer, "order_count", _int),
    "firstOrderAt": _c(Customer, "first_order_at", _datetime),
    "lastOrderAt": _c(Customer, "last_order_at", _datetime),
}
_CUSTOMER_OBJECTS: dict[str, _Build] = {
    "channelStats": _channel_stats,
    "orders": _orders,
}


def _me(scope: _Scope, nodes: list[ast.Field]) -> str:
    """``resolve_me``: the customer whose ``saleor_user_id`` is the requester's
    (``CustomerByUserIdLoader``), null when there is none."""
    _no_arguments(nodes)
    user = scope.bind("user", lambda requester, variables: requester.user_id)
    customer = _leaves(
        scope, "CrmCustomer", _merged(nodes), _CUSTOMER_LEAVES, _CUSTOMER_OBJECTS, "c"
    )
    return (
        f"coalesce((SELECT {_chain(customer)} FROM {_CUSTOMERS} c "
        f"WHERE c.saleor_user_id = {user}::text), 'null')"
    )


class Compiled(NamedTuple):
    """One operation's statement, its parameters and its per-request checks."""

    sql: str
    params: tuple[tuple[str, Callable[[Any, dict[str, Any]], Any]], ...]
    checks: tuple[Callable[[dict[str, Any]], Any], ...]


def compile_operation(
    schema: Any, document: ast.Document, operation_name: str | None
) -> Compiled | None:
    """The statement of ``document``'s operation (as the view picks it), or ``None`` when
    this module does not know its shape (see the module's fallback rule)."""
    operations = [d for d in document.definitions if isinstance(d, ast.OperationDefinition)]
    if operation_name:
        operation = next((o for o in operations if o.name and o.name.value == operation_name), None)
    else:
        operation = operations[0] if len(operations) == 1 else None
    if operation is None or operation.operation != "query" or operation.directives:
        return None
    if connections["default"].vendor != "postgresql":  # the demo's SQLite: the executors
        return None
    query_type = schema.get_query_type()
    if not _schema_matches(schema, query_type):
        return None
    scope = _Scope(document, operation)
    try:
        parts: list[tuple[str, _Text]] = []
        for key, nodes in scope.collect(operation.selection_set, query_type.name).items():
            name = nodes[0].name.value
            if name == "__typename":
                parts.append((key, [_Lit(_key(query_type.name))]))
            elif name == "me":
                parts.append((key, _me(scope, nodes)))
            else:
                return None
    except Unsupported:
        return None
    if "user" not in scope.params:  # no ``me``: nothing worth a statement
        return None
    return Compiled(
        f"SELECT {_chain(_object(parts))}", tuple(scope.params.items()), tuple(scope.checks)
    )


def _schema_matches(schema: Any, query_type: Any) -> bool:
    """Whether ``me`` is the ``CrmCustomer`` this module maps and every field it maps is
    still there (a schema change then falls back instead of answering wrongly)."""
    me = query_type.fields.get("me")
    if me is None or getattr(me.type, "name", None) != "CrmCustomer" or me.args:
        return False
    for type_name, names in (
        ("CrmCustomer", [*_CUSTOMER_LEAVES, *_CUSTOMER_OBJECTS]),
        ("CrmCustomerChannelStats", [*_STATS_LEAVES, *_STATS_OBJECTS]),
        ("CrmOrder", [*_ORDER_LEAVES, *_ORDER_OBJECTS]),
        ("CrmOrderLine", [*_LINE_LEAVES, *_LINE_MONEY]),
        ("CrmMoney", ["amount", "currency"]),
        ("CrmOrderCountableConnection", ["totalCount", "pageInfo", "edges"]),
        ("CrmOrderCountableEdge", ["cursor", "node"]),
        ("PageInfo", ["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"]),
    ):
        graphql_type = schema.get_type(type_name)
        if graphql_type is None or not set(names) <= set(graphql_type.fields):
            return False
    return True


def render(compiled: Compiled, requester: Any, variables: dict[str, Any]) -> str | None:
    """The JSON text of ``data`` for this request, or ``None`` when the executors must
    answer (an anonymous caller, a variable or page size they refuse, a value whose text
    would differ: ``_EXOTIC``). One statement; nothing read before the checks pass."""
    if not requester.user_id:
        return None
    try:
        for check in compiled.checks:
            check(variables)
        params = {name: value(requester, variables) for name, value in compiled.params}
    except _Bad:
        return None
    rows = select_rows(compiled.sql, params)
    text = rows[0][0]
    if _EXOTIC in text:
        return None
    return text
