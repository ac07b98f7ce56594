"""Model instances from hand-written SQL, for the few read paths that run on every request.

Building a queryset's SQL costs Django ~0.5-1 ms of CPU per query (expressions, compiler,
quoting), more than PostgreSQL needs to answer a primary-key or foreign-key lookup. The
customer 360 runs four such queries per request, so its hot loaders state their WHERE clause
in SQL once and get ordinary model instances back (the same columns, the same database
converters, so resolvers and the rest of the code cannot tell the difference).
"""

from __future__ import annotations

import inspect
import re
from asyncio import _get_running_loop
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, Generic, NamedTuple, TypeVar

import orjson
from django.apps import apps
from django.db import connections, models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.dispatch.dispatcher import NO_RECEIVERS

from saleor_crm_plugin.core.compat import on_psycopg3

M = TypeVar("M", bound=models.Model)
# A reader's statement for one set of columns: SELECT ... FROM, attnames, converters by
# column index, whether instances skip ``__init__``, whether a column is a timestamp.
_Prepared = tuple[str, list[str], list[tuple[int, list[Any]]], bool, bool]
_MAX_PREPARED = 64

try:  # psycopg's C timestamptz loader (psycopg[binary] or psycopg[c]); None elsewhere
    import psycopg as _psycopg3
    from psycopg import postgres as _pg_types
    from psycopg._cmodule import _psycopg
    from psycopg._tz import get_tzinfo
    from psycopg.pq import Format

    _C_TZ_LOADER: Any = getattr(_psycopg, "TimestamptzLoader", None) if _psycopg else None
    _TIMESTAMPTZ_OID = _pg_types.types["timestamptz"].oid
    _BINARY: Any = Format.BINARY
    _TEXT: Any = Format.TEXT
except ImportError:  # pragma: no cover - psycopg2, SQLite or the pure-Python psycopg
    _C_TZ_LOADER = None
    _psycopg3 = None
    _BINARY = _TEXT = None


def use_c_timestamptz_loader(raw_cursor: Any) -> bool:
    """Load ``timestamptz`` columns of ``raw_cursor`` (a psycopg 3 cursor) with psycopg's C
    loader instead of Django's Python one, when both give the very same value; returns
    whether it did.

    Django registers a Python subclass of psycopg's loader that parses the text in Python,
    converts it to the session time zone, then ``replace(tzinfo=<Django's zone>)``: a third
    of the CPU of reading an order page. The C loader parses and converts to the session
    time zone too (``get_tzinfo(pgconn)``), so when Django's zone *is* that object (the
    default: ``USE_TZ``, sessions in UTC, both ``datetime.timezone.utc``) the replace is a
    no-op and the values are equal, tzinfo object included. Any other set-up keeps Django's
    loader."""
    if _C_TZ_LOADER is None:
        return False
    adapters = getattr(raw_cursor, "adapters", None)
    pgconn = getattr(getattr(raw_cursor, "connection", None), "pgconn", None)
    if adapters is None or pgconn is None:
        return False
    loader = adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
    zone = getattr(loader, "timezone", None)
    if zone is None or zone is not get_tzinfo(pgconn):
        return False
    adapters.register_loader(_TIMESTAMPTZ_OID, _C_TZ_LOADER)
    return True


def c_timestamps(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    """A Django execute wrapper (``connection.execute_wrapper(c_timestamps)``) giving each
    statement's cursor the C ``timestamptz`` loader where it reads the very same values
    (``use_c_timestamptz_loader``), for the ORM's reads as ``RowReader`` does for its own.

    Django registers its Python loader on every cursor it makes; an inbox batch's querysets
    (order histories, channel stats, aggregates) read ~4 timestamps per event through it,
    each a Python ``load``, an ISO parse in Python and a ``datetime.replace`` with keyword
    parsing. Any other set-up (another session time zone, psycopg 2, SQLite) keeps Django's
    loader, so values are unchanged either way."""
    raw_cursor = getattr(context.get("cursor"), "cursor", None)
    if raw_cursor is not None:
        use_c_timestamptz_loader(raw_cursor)
    return execute(sql, params, many, context)


def init_receivers(model: type[models.Model]) -> bool:
    """Whether anything listens to ``pre_init``/``post_init`` for ``model`` (then instances
    must come from the real constructor).

    Asked for every instance the ledger and the projection build (tens of thousands per
    inbox batch), so it first takes the shortcut ``Signal.send`` takes: a signal with no
    receiver at all, or whose per-sender cache already says "none", has no listener, without
    ``has_listeners`` resolving the receivers into fresh lists each time."""
    if _none_for(pre_init, model) and _none_for(post_init, model):
        return False
    return pre_init.has_listeners(model) or post_init.has_listeners(model)


def _none_for(signal: Any, model: type[models.Model]) -> bool:
    """What ``Signal.send`` checks before doing anything (Django 4.2-5.2): no receivers, or
    the sender cache's ``NO_RECEIVERS`` mark (cleared by every ``connect``/``disconnect``)."""
    if not signal.receivers:
        return True
    return (
        signal.use_caching
        and not signal._dead_receivers
        and signal.sender_receivers_cache.get(model) is NO_RECEIVERS
    )


def bare_instance(
    model: type[M], values: Iterable[tuple[str, Any]] | dict[str, Any], db: str | None = None
) -> M:
    """What ``Model.__init__`` (``db`` None: a new row) or ``Model.from_db`` (``db``: a loaded
    row) end with, minus the per-field loop and two signals; only when
    ``init_receivers(model)`` is False. A column left out is deferred, as Django's ``defer``
    leaves it (loaded on first access)."""
    row = model.__new__(model)
    state = ModelState()
    if db is not None:
        state.adding = False
        state.db = db
    row._state = state
    row.__dict__.update(values)
    return row


def adopted_instance(model: type[M], values: dict[str, Any]) -> M:
    """``bare_instance(model, values)`` for a new row when nobody else holds ``values``: the
    dict becomes the instance's own (with its ``_state``) instead of being copied into it key
    by key (~20 keys a row, for every new row of a batch)."""
    values["_state"] = ModelState()
    row = _new_object(model)
    row.__dict__ = values
    return row


_new_object = object.__new__


# Per model: (defaults that are the same object every time by attname, callable defaults by
# attname, every concrete attname, related fields' names -> their attnames). Built once.
_Blueprint = tuple[dict[str, Any], tuple[tuple[str, Any], ...], frozenset[str], dict[str, str]]
_BLUEPRINTS: dict[type[models.Model], _Blueprint] = {}


def _blueprint(model: type[models.Model]) -> _Blueprint:
    fixed: dict[str, Any] = {}
    fresh: list[tuple[str, Any]] = []
    for field in model._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            fresh.append((field.attname, field.default))  # a new value (list, now()) each time
        else:
            fixed[field.attname] = field.get_default()  # Django returns the same object
    related = {
        f.name: f.attname
        for f in model._meta.concrete_fields
        if f.is_relation and f.name != f.attname
    }
    blueprint = (fixed, tuple(fresh), frozenset(fixed) | {a for a, _ in fresh}, related)
    _BLUEPRINTS[model] = blueprint
    return blueprint


def new_instance(model: type[M], /, **values: Any) -> M:
    """``model(**values)`` for a new row, without ``Model.__init__``'s loop over every field
    and its two signals: the ledger and the projection build thousands of rows per batch, and
    the constructor was most of what a new lot, entry or order cost in Python.

    The result is what the constructor gives: every concrete attribute set (given values,
    else the field's default, callable defaults called), related objects given by field name
    set through their descriptor as ``__init__`` does. Anything else takes the real
    constructor: receivers of ``pre_init``/``post_init`` for the model, or a keyword that is
    neither a concrete attribute nor a foreign key's name (a property, a typo: Django decides
    what it means or raises)."""
    blueprint = _BLUEPRINTS.get(model) or _blueprint(model)
    fixed, fresh, attnames, related = blueprint
    if init_receivers(model):
        return model(**values)
    objects = None
    if not values.keys() <= attnames:
        objects = {name: values.pop(name) for name in related if name in values}
        if not values.keys() <= attnames or any(related[name] in values for name in objects):
            values.update(objects)
            return model(**values)
    merged = dict(fixed)
    for attname, default in fresh:
        if attname not in values:
            merged[attname] = default()
    merged.update(values)
    row = adopted_instance(model, merged)  # ``merged`` is made here: nobody else holds it
    if objects:
        for name, value in objects.items():
            setattr(row, name, value)  # the descriptor sets ``<name>_id`` and caches it
    return row


# Every digit made "0": a run of 19 zeros in a value mapped through this table is a run of 19
# digits, the shortest integer literal that can fall outside the 64-bit range (orjson reads
# those as floats; ``json.loads`` as ints).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
_JSON_FROM_DB = models.JSONField.from_db_value


# The commonest JSON texts (a line's attributes, a customer's metadata), whose value is made
# without encoding, scanning and parsing them (~1,000 instructions each).
_EMPTY_JSON: dict[str, Any] = {"[]": list, "{}": dict}


def _json_from_db(value: Any, expression: Any, connection: Any) -> Any:
    """``JSONField.from_db_value`` (no ``decoder``) with the text decoded by orjson: ~4 JSON
    values per drained inbox event (field versions, metadata, write-back items), each a
    ``json.loads`` whose Python layers (decoder, whitespace matches) cost more than the
    parse.

    orjson gives the same values for the JSON PostgreSQL writes (floats included: both
    round correctly) except integer literals beyond 64 bits, which it reads as floats: text
    with a run of 19 digits (a byte scan of a short value) and anything orjson refuses or
    that is not text go to Django's own converter, so what comes back, and what an invalid
    value gives, stay exactly its."""
    if type(value) is str:
        empty = _EMPTY_JSON.get(value)
        if empty is not None:
            return empty()  # a new list or dict each time, as a parse makes
        try:
            data = value.encode()
        except UnicodeEncodeError:
            data = None
        if data is not None and _NINETEEN_DIGITS not in data.translate(_DIGITS_AS_ZERO):
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
    return _JSON_FROM_DB(expression.target, value, expression, connection)


def _faster(converter: Any) -> Any:
    """``converter`` (a column's database converter), or ``_json_from_db`` for a plain
    ``JSONField``'s: same values (see there), a fraction of the CPU."""
    field = getattr(converter, "__self__", None)
    if (
        getattr(converter, "__func__", None) is _JSON_FROM_DB
        and isinstance(field, models.JSONField)
        and field.decoder is None
    ):
        return _json_from_db
    return converter


def _converted(
    rows: Sequence[Any], converters: list[tuple[int, list[Any]]], connection: Any
) -> list[list[Any]]:
    """``rows`` as lists with each converted column (a JSON column: the batch's lines, orders
    and customers) run through its converters by one ``map`` over the rows: a C-level call
    per value where a Python loop ran one per row and converter. Same converters on the same
    values; only when values of two columns would both fail to convert may the error be the
    other one (none does on what PostgreSQL returns)."""
    table = list(map(list, rows))
    count = len(table)
    for index, pairs in converters:
        column = [values[index] for values in table]
        for converter, expression in pairs:
            column = list(
                map(converter, column, repeat(expression, count), repeat(connection, count))
            )
        for values, value in zip(table, column):  # noqa: B905 - one value per row
            values[index] = value
    return table


class RowReader(Generic[M]):
    """``SELECT <every concrete column> FROM <table> [alias] WHERE ...`` of one model."""

    def __init__(
        self,
        model: type[M],
        alias: str = "t",
        using: str = "default",
        defer: tuple[str, ...] = (),
    ) -> None:
        """``defer`` names columns the request path never reads (large JSON documents, say):
        they are left out like ``QuerySet.defer`` leaves them, and loaded on first access."""
        self.model = model
        self.defer = defer
        self.alias = alias
        self.using = using
        # Statement, attnames, converters, plain, timestamps: by the ``only`` set asked for.
        self._prepared: dict[frozenset[str] | None, _Prepared] = {}

    def _prepare(self, only: frozenset[str] | None) -> _Prepared:
        # Prepared lazily: the backend (PostgreSQL, or SQLite for the demo) is known only once
        # settings are loaded, and it decides quoting and converters.
        prepared = self._prepared.get(only)
        if prepared is not None:
            return prepared
        concrete = self.model._meta.concrete_fields
        if only is not None and not only <= {f.attname for f in concrete}:
            # Not only columns (a property, say): what it reads is unknown, so read it all.
            prepared = self._prepare(None)
        else:
            prepared = self._statement(only)
        if only is None or len(self._prepared) < _MAX_PREPARED:  # clients choose selections
            self._prepared[only] = prepared
        return prepared

    def _statement(self, only: frozenset[str] | None) -> _Prepared:
        concrete = self.model._meta.concrete_fields
        connection = connections[self.using]
        quote = connection.ops.quote_name
        if only is None:
            fields = [f for f in concrete if f.attname not in self.defer]
        else:
            fields = [f for f in concrete if f.attname in only or f.primary_key]
        columns = ", ".join(f"{self.alias}.{quote(f.column)}" for f in fields)
        converters = []
        for index, field in enumerate(fields):
            column = field.get_col(self.alias)
            found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            if found:
                converters.append((index, [(_faster(f), column) for f in found]))
        table = f"{quote(self.model._meta.db_table)} {self.alias}"
        return (
            f"SELECT {columns} FROM {table}",
            [f.attname for f in fields],
            converters,
            not init_receivers(self.model),
            any(isinstance(f, models.DateTimeField) for f in fields),
        )

    def fetch(
        self,
        where: str,
        params: Sequence[Any],
        *,
        order_by: str = "",
        limit: int | None = None,
        extra: Sequence[tuple[str, str]] = (),
        only: frozenset[str] | None = None,
        for_update: bool = False,
        skip_locked: bool = False,
    ) -> list[M]:
        """Rows matching ``where`` (SQL with ``%s`` placeholders, columns qualified with the
        reader's alias). ``extra`` adds computed columns as ``(attribute, SQL expression)``.
        ``only`` names the attributes to read (``selection.selected_columns``; the primary
        key always), the others deferred as ``QuerySet.only`` defers them; ``None``: every
        column but the reader's ``defer``. ``for_update`` locks them (``select_for_update()``;
        nothing where the backend has no row locks, as Django does), skipping rows another
        transaction holds with ``skip_locked`` where the backend can."""
        prepared = self._prepare(only)
        select, _, _, _, c_timestamps = prepared
        sql = select
        if extra:
            extra_sql = ", ".join(expression for _, expression in extra)
            sql = sql.replace(" FROM ", f", {extra_sql} FROM ", 1)
        sql = f"{sql} WHERE {where}"
        if order_by:
            sql = f"{sql} ORDER BY {order_by}"
        if limit is not None:
            sql = f"{sql} LIMIT {int(limit)}"
        connection = connections[self.using]
        if for_update and connection.features.has_select_for_update:
            sql = f"{sql} FOR UPDATE"
            if skip_locked and connection.features.has_select_for_update_skip_locked:
                sql = f"{sql} SKIP LOCKED"
        rows = _select(connection, sql, list(params), c_timestamps)
        return self._build(prepared, rows, [name for name, _ in extra], connection)

    def fetch_with(
        self,
        child: RowReader[Any],
        child_fk: str,
        where: str,
        params: Sequence[Any],
        *,
        order_by: str = "",
        only: frozenset[str] | None = None,
        child_only: frozenset[str] | None = None,
    ) -> list[tuple[M, list[Any]]]:
        """Rows matching ``where``, each with its ``child`` rows (``child_fk``: the child's
        foreign key to this model), in one statement where ``fetch`` then ``child.fetch``
        take two round trips: a ``LEFT JOIN`` ordered by this model's primary key, then by
        ``order_by`` (SQL on the child's alias, which must differ from this reader's).
        ``only`` and ``child_only`` are ``fetch``'s ``only`` for each side; the instances
        are the ones the two ``fetch`` calls would build."""
        assert child.alias != self.alias and child.using == self.using
        prepared = self._prepare(only)
        child_prepared = child._prepare(child_only)
        select, attnames, _, _, c_timestamps = prepared
        child_select, child_attnames, _, _, child_timestamps = child_prepared
        columns, table = select.removeprefix("SELECT ").split(" FROM ", 1)
        child_columns, child_table = child_select.removeprefix("SELECT ").split(" FROM ", 1)
        connection = connections[self.using]
        quote = connection.ops.quote_name
        pk = self.model._meta.pk
        on = (
            f"{child.alias}.{quote(child.model._meta.get_field(child_fk).column)} = "
            f"{self.alias}.{quote(pk.column)}"
        )
        sql = (
            f"SELECT {columns}, {child_columns} FROM {table} LEFT JOIN {child_table} ON {on} "
            f"WHERE {where} ORDER BY {self.alias}.{quote(pk.column)}"
        )
        if order_by:
            sql = f"{sql}, {order_by}"
        rows = _select(connection, sql, list(params), c_timestamps or child_timestamps)
        width = len(attnames)
        pk_index = attnames.index(pk.attname)
        child_pk_index = width + child_attnames.index(child.model._meta.pk.attname)
        parent_rows: list[Any] = []
        counts: list[int] = []
        child_rows: list[Any] = []
        for row in rows:
            if not parent_rows or row[pk_index] != parent_rows[-1][pk_index]:
                parent_rows.append(row[:width])
                counts.append(0)
            if row[child_pk_index] is not None:  # else the LEFT JOIN's row without a child
                child_rows.append(row[width:])
                counts[-1] += 1
        parents = self._build(prepared, parent_rows, [], connection)
        children = child._build(child_prepared, child_rows, [], connection)
        result: list[tuple[M, list[Any]]] = []
        start = 0
        for parent, count in zip(parents, counts, strict=True):
            result.append((parent, children[start : start + count]))
            start += count
        return result

    def fetch_page_with(
        self,
        child: RowReader[Any],
        child_fk: str,
        where: str,
        params: Sequence[Any],
        *,
        order_by: str,
        limit: int,
        children_of: int,
        child_order_by: str,
        extra: Sequence[tuple[str, str]] = (),
        only: frozenset[str] | None = None,
        child_only: frozenset[str] | None = None,
    ) -> tuple[list[M], list[Any]]:
        """``fetch(where, params, order_by=..., limit=..., extra=..., only=...)`` and the
        ``child`` rows of its first ``children_of`` rows (``child_fk``: the child's foreign
        key to this model), ordered by ``child_order_by`` (SQL on the child's alias), in one
        statement (``fetch_together``) where the two ``fetch`` calls take two round trips.
        ``order_by`` must be a total order (end with a unique column)."""
        quote = connections[self.using].ops.quote_name
        fk = quote(child.model._meta.get_field(child_fk).column)
        pk = quote(self.model._meta.pk.column)
        page, children = fetch_together(
            [
                Read(self, where, params, order_by, only, extra, limit, name="page"),
                Read(
                    child,
                    among(
                        f"{child.alias}.{fk}",
                        f"SELECT page.{pk} FROM page WHERE page._n <= {int(children_of)}",
                        self.using,
                    ),
                    (),
                    child_order_by,
                    child_only,
                ),
            ]
        )
        return page, children

    def _build(
        self, prepared: _Prepared, rows: Sequence[Any], extra_names: list[str], connection: Any
    ) -> list[M]:
        """Instances of ``rows``: the columns of ``prepared`` (a ``_prepare`` answer), then
        one value per name of ``extra_names``."""
        _, attnames, converters, plain, _ = prepared
        width = len(attnames)
        model = self.model
        using = self.using
        result: list[M] = []
        if rows and len(rows[0]) != width + len(extra_names):
            raise ValueError(f"{len(rows[0])} columns read, {width + len(extra_names)} expected")
        # Every row of one statement has the columns checked above, so the zips below need
        # no ``strict=True``: a keyword argument costs ``zip`` a parse of ~1k instructions,
        # per row (~45 rows a customer 360).
        if plain:
            # The common case (order pages, lines): ``bare_instance`` inlined; a JSON column's
            # converters run first, a column at a time (``_converted``).
            if converters:
                rows = _converted(rows, converters, connection)
            new = model.__new__
            names = _names_with(model, attnames, extra_names) if extra_names else attnames
            for row in rows:
                instance = new(model)
                state = ModelState()
                state.adding = False
                state.db = using
                instance._state = state
                if names is not None:
                    instance.__dict__.update(zip(names, row))  # noqa: B905
                else:
                    instance.__dict__.update(zip(attnames, row[:width]))  # noqa: B905
                    for name, value in zip(extra_names, row[width:]):  # noqa: B905
                        setattr(instance, name, value)
                result.append(instance)
            return result
        for row in rows:
            values = list(row[:width])
            for index, pairs in converters:
                value = values[index]
                for converter, column in pairs:
                    value = converter(value, column, connection)
                values[index] = value
            instance = model.from_db(using, attnames, values)
            for name, value in zip(extra_names, row[width:]):  # noqa: B905
                setattr(instance, name, value)
            result.append(instance)
        return result


# ``_names_with``'s answers by model, attnames and extra names (``None``: set by ``setattr``).
_NAMES_WITH: dict[tuple[Any, ...], list[str] | None] = {}


def _names_with(
    model: type[models.Model], attnames: list[str], extra_names: list[str]
) -> list[str] | None:
    """``attnames`` then ``extra_names``, when ``setattr`` would put each extra value in the
    instance's ``__dict__`` under its name anyway (the model has no such attribute, or a
    non-data descriptor such as a column's ``DeferredAttribute``): the row then goes in
    with one ``__dict__.update`` instead of a slice and a ``setattr`` per extra column (the
    customer 360's amounts and page count: ~80 a request). ``None`` when a name is a data
    descriptor (a property, a foreign key's attname, a relation): ``setattr`` it is."""
    key = (model, tuple(attnames), tuple(extra_names))
    found = _NAMES_WITH.get(key, _UNKNOWN)
    if found is not _UNKNOWN:
        return found  # type: ignore[return-value]
    plain = True
    for name in extra_names:
        attribute = inspect.getattr_static(model, name, None)
        kind = type(attribute)
        if attribute is not None and (hasattr(kind, "__set__") or hasattr(kind, "__delete__")):
            plain = False
    found = [*attnames, *extra_names] if plain else None
    if len(_NAMES_WITH) < _MAX_PREPARED:  # clients choose selections
        _NAMES_WITH[key] = found
    return found


_UNKNOWN = object()


class Read(NamedTuple):
    """One read of ``fetch_together``: ``reader.fetch(where, params, order_by=order_by,
    only=only, extra=extra, limit=limit)``. ``order_by`` must be a total order (end with a
    unique column): the rows are numbered by it. With a ``name``, later reads' ``where`` may
    refer to its rows as a table of that name (``x.fk IN (SELECT page.id FROM page)``), whose
    ``_n`` column numbers them from 1 in ``order_by``."""

    reader: RowReader[Any]
    where: str
    params: Sequence[Any]
    order_by: str
    only: frozenset[str] | None = None
    extra: Sequence[tuple[str, str]] = ()
    limit: int | None = None
    name: str | None = None


def fetch_together(reads: Sequence[Read], statement: Together | None = None) -> list[list[Any]]:
    """The instances each ``Read`` gives, in one statement where a ``fetch`` each takes one
    round trip apiece (the customer 360: customer, channel stats, orders page, lines).

    A join would repeat a parent's columns on each child row (parsed again for every line
    of an order: Decimals, timestamps); instead each read is a CTE, and their rows come as
    ``UNION ALL`` branches side by side, each branch leaving the other reads' columns NULL
    (a NULL costs psycopg nearly nothing), put in order by read then by ``_n``. A first branch
    with no row (``WHERE 1 = 0``) selects every CTE's columns, so every column of the union
    has its CTE's type whichever branch comes next (a NULL literal would make it ``text``).
    The instances are the ones the ``fetch`` calls would build, same columns, converters
    and deferral.

    ``statement`` is ``together(reads)`` kept by a caller that sends reads of one shape
    (all but their parameters) again and again: the shape's key is then not built and
    hashed at every call."""
    using = reads[0].reader.using
    if statement is None:
        statement = together(reads)
    sql, parts, timestamps = statement
    params: list[Any] = []
    for read in reads:
        params.extend(read.params)
    connection = connections[using]
    rows = _select(connection, sql, params, timestamps)
    rows.sort(key=_READ_AND_NUMBER)  # a pass over rows already in order, as a rule
    split: list[list[Any]] = [[] for _ in reads]
    for row in rows:
        index = row[0] >> _NUMBER_BITS
        _, begin, end, _ = parts[index]
        split[index].append(row[begin:end])
    return [
        read.reader._build(prepared, found, extra_names, connection)
        # ``parts`` and ``split`` have one entry per read: no ``strict=True`` (its keyword
        # parse costs more than the zip).
        for read, (prepared, _, _, extra_names), found in zip(reads, parts, split)  # noqa: B905
    ]


def together(reads: Sequence[Read]) -> Together:
    """``fetch_together``'s statement for reads of this shape (all but their parameters),
    made once per shape."""
    key = tuple(
        (
            read.reader,
            read.where,
            read.order_by,
            read.only,
            tuple(read.extra),
            read.limit,
            read.name,
        )
        for read in reads
    )
    statement = _TOGETHER.get(key)
    if statement is None:
        statement = _together(reads)
        if len(_TOGETHER) < _MAX_PREPARED:  # clients choose selections
            _TOGETHER[key] = statement
    return statement


# ``fetch_together``'s statements by the reads' shape (all but their parameters): the SQL, per
# read (its reader's prepared columns, where its columns start and end in a row, its extra
# columns' names), and whether any column is a timestamp.
Together = tuple[str, list[tuple[_Prepared, int, int, list[str]]], bool]
# Each row starts with one integer, its read's index times 2**32 plus its number in the
# read: one value for psycopg to parse where two were (~400 instructions each, ~45 rows a
# customer 360). A read returns far fewer than 2**32 rows.
_NUMBER_BITS = 32
_READ_AND_NUMBER = itemgetter(0)
_TOGETHER: dict[tuple[Any, ...], Together] = {}


def _together(reads: Sequence[Read]) -> Together:
    using = reads[0].reader.using
    assert all(read.reader.using == using for read in reads)
    quote = connections[using].ops.quote_name
    ctes = []
    names = []
    selects = []  # per read: its CTE's output columns, qualified
    parts = []
    timestamps = False
    start = 1  # after the read's index and the row's number, packed into one integer
    for index, read in enumerate(reads):
        name = read.name or f"r{index}"
        prepared = read.reader._prepare(read.only)
        select, attnames, _, _, c_timestamps = prepared
        timestamps = timestamps or c_timestamps
        columns, table = select.removeprefix("SELECT ").split(" FROM ", 1)
        extra_sql = "".join(f", {sql} AS {quote(extra)}" for extra, sql in read.extra)
        limit = "" if read.limit is None else f" ORDER BY {read.order_by} LIMIT {int(read.limit)}"
        ctes.append(
            f"{name} AS (SELECT {columns}{extra_sql}, row_number() OVER "
            f"(ORDER BY {read.order_by}) AS _n FROM {table} WHERE {read.where}{limit})"
        )
        names.append(name)
        extra_names = [extra for extra, _ in read.extra]
        outputs = [*attnames, *extra_names]
        selects.append([f"{name}.{quote(column)}" for column in outputs])
        parts.append((prepared, start, start + len(outputs), extra_names))
        start += len(outputs)
    typed = ", ".join(column for columns in selects for column in columns)
    sources = ", ".join(names)
    branches = [f"SELECT CAST(NULL AS BIGINT), {typed} FROM {sources} WHERE 1 = 0"]
    for index, name in enumerate(names):
        values = [
            column if other == index else "NULL"
            for other, columns in enumerate(selects)
            for column in columns
        ]
        key = f"{index} * {1 << _NUMBER_BITS} + {name}._n"
        branches.append(f"SELECT {key}, {', '.join(values)} FROM {name}")
    # No ORDER BY: PostgreSQL's Sort of the union's wide rows cost more backend CPU (~80 us
    # a customer 360) than the two statements the union saves; the rows are put in order
    # here (``fetch_together``), by read then by number, as the ORDER BY would.
    sql = f"WITH {', '.join(ctes)} {' UNION ALL '.join(branches)}"
    return sql, parts, timestamps


def _select(connection: Any, sql: str, params: list[Any], c_timestamps: bool) -> list[Any]:
    """The rows of one ``SELECT`` as Django's cursor wrapper reads them (query logging,
    execute wrappers, error translation)."""
    entry = _cursor_entry(connection)
    if entry is None:
        with connection.cursor() as cursor:
            if c_timestamps:
                use_c_timestamptz_loader(cursor.cursor)
            cursor.execute(sql, params)
            return cursor.fetchall()
    # Not closed: the psycopg cursor is the connection's, kept for its next read.
    raw_cursor = entry[2]
    binary_by_sql = entry[3]
    binary = binary_by_sql.get(sql)
    raw_cursor.format = _BINARY if binary else _TEXT
    if connection.execute_wrappers or connection.queries_logged or not apps.ready:
        cursor = connection._prepare_cursor(raw_cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    else:
        # What Django's cursor wrapper does around the statement when it has no wrapper to
        # run, no query to log and no warning to give (apps not ready): the same checks and
        # error translation, minus its per-statement objects (~24k instructions: the
        # wrapper, and ``fetchall`` wrapped by ``functools.wraps`` at every call).
        connection.validate_thread_sharing()
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors:
            raw_cursor.execute(sql, params)
            rows = raw_cursor.fetchall()
    if binary is None and len(binary_by_sql) < _MAX_PREPARED:  # clients choose selections
        binary_by_sql[sql] = binary_reads_the_same(raw_cursor)
    return rows


# Result columns whose binary form psycopg's own loaders read into the very value its text
# loaders give: integers, ``float8`` (the exact double; the text is the shortest one that
# reads back as it, PostgreSQL's default since 12), text, booleans, and ``timestamptz``
# (both C loaders convert to the session time zone, ``get_tzinfo(pgconn)``). Not
# ``numeric``, ``float4`` (its text widens to another double), JSON or network types
# (Django loads those as text), nor anything else.
_SAME_IN_BINARY = frozenset(
    {"int2", "int4", "int8", "float8", "text", "varchar", "bool", "timestamptz"}
)
_SAME_IN_BINARY_OIDS = (
    frozenset(_pg_types.types[name].oid for name in _SAME_IN_BINARY)
    if _psycopg3 is not None
    else frozenset()
)


def binary_reads_the_same(raw_cursor: Any) -> bool:
    """Whether the result ``raw_cursor`` (a psycopg 3 cursor) just read would load into
    the same values in binary format: every column of a type in ``_SAME_IN_BINARY``, loaded
    in both formats by psycopg's own loaders (none Django's: its ``timestamptz`` loader
    answers in Django's zone, so those columns qualify only where the C loader replaced it,
    ``use_c_timestamptz_loader``).

    ``_select`` then asks for that statement's rows in binary: an integer or a double is
    then 4 or 8 bytes to copy, not text to parse (~400 instructions a value: the customer
    360 reads ~170 integers, the key column and ids, and ~70 amounts), and PostgreSQL skips
    writing them as text."""
    result = raw_cursor.pgresult
    if result is None or _psycopg3 is None:
        return False
    adapters = raw_cursor.adapters
    defaults = _psycopg3.adapters
    for index in range(result.nfields):
        oid = result.ftype(index)
        if oid not in _SAME_IN_BINARY_OIDS:
            return False
        for format_ in (_TEXT, _BINARY):
            loader = adapters.get_loader(oid, format_)
            if loader is None or loader is not defaults.get_loader(oid, format_):
                return False
    return True


# Per connection: the connection, its session time zone, the psycopg cursor ``_select``
# reads with, and per statement whether it reads in binary (``binary_reads_the_same``; the
# first run of each is in text, to learn its columns).
_CursorEntry = tuple[Any, Any, Any, dict[str, bool]]


def _server_cursor(connection: Any) -> Any:
    """The psycopg 3 cursor that binds parameters on the server, one per connection, when
    the connection may prepare statements; ``None`` to use Django's own cursor.

    Django's psycopg cursors bind on the client: the values are quoted into the SQL text,
    so every customer's query is new text that PostgreSQL parses and plans from scratch
    (half of its CPU for a customer 360's four small queries). With ``$1`` parameters the
    text is the same for every request and psycopg prepares it once per connection after
    ``prepare_threshold`` runs (``DATABASE_PREPARE_THRESHOLD``). When preparing is off (for
    a transaction-pooling PgBouncer), server binding alone would only add a describe step,
    so Django's cursor is kept.

    The cursor is made (and given the C ``timestamptz`` loader when it reads the same
    values) once per connection and session time zone rather than per query: building a
    cursor and its adapters map cost a fifth of an order page's read."""
    entry = _cursor_entry(connection)
    return None if entry is None else entry[2]


def _cursor_entry(connection: Any) -> _CursorEntry | None:
    """``_server_cursor``'s cursor with its connection, zone and statements' formats."""
    if connection.vendor != "postgresql" or not on_psycopg3():
        return None
    connection.close_if_health_check_failed()
    if connection.connection is None or _get_running_loop() is not None:
        # Connects, or refuses a thread running an event loop (Django's ``async_unsafe``).
        # With a connection and no loop it does nothing, bar finding that out by raising
        # and catching ``get_running_loop``'s RuntimeError at every read.
        connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        return None
    zone = get_tzinfo(raw.pgconn) if _C_TZ_LOADER is not None else None
    cached = connection.__dict__.get("_crm_row_cursor")
    if cached is not None and cached[0] is raw and cached[1] is zone and not cached[2].closed:
        return cached
    import psycopg

    cursor = psycopg.Cursor(raw)
    use_c_timestamptz_loader(cursor)
    # A new cursor (new adapters, maybe another zone): its statements' formats are learnt
    # again.
    entry: _CursorEntry = (raw, zone, cursor, {})
    connection.__dict__["_crm_row_cursor"] = entry
    return entry


def among(column: str, select: str, using: str = "default") -> str:
    """SQL for ``column IN (select)``, written ``column = ANY(ARRAY(select))`` on PostgreSQL:
    the subquery's few ids are then one index scan's array, as an ``IN`` list of
    parameters is, where ``IN (SELECT ...)`` plans a hash aggregate and a join (more
    backend CPU per customer 360, measured with ``fetch_together``'s statement)."""
    if connections[using].vendor == "postgresql":
        return f"{column} = ANY(ARRAY({select}))"
    return f"{column} IN ({select})"


def placeholders(values: Sequence[Any]) -> str:
    """``%s, %s, ...`` for an IN list (portable, unlike PostgreSQL's ``= ANY(%s)``)."""
    return ", ".join(["%s"] * len(values))


def select_rows(sql: str, params: Any, using: str = "default") -> list[Any]:
    """The rows of one ``SELECT`` of ``sql`` (``%s`` or ``%(name)s`` placeholders), read
    as ``fetch_together`` reads its statement: bound on the server and prepared after
    ``DATABASE_PREPARE_THRESHOLD`` runs where the connection may, through Django's
    cursor checks and query logging (``_select``). For statements that compute their
    answer in PostgreSQL (``graphql/customers/sql_render.py``)."""
    connection = connections[using]
    raw = _dollar_statement(sql) if params.__class__ is dict else None
    if raw is not None:
        rows = _select_dollar(connection, raw, params)
        if rows is not None:
            return rows
    return _select(connection, sql, params, False)


# ``%`` and what follows it as psycopg reads a statement's placeholders (its documented
# ``%(name)s`` and ``%%``): a ``%(`` name ``)`` and one character, or any one character.
_PLACEHOLDER = re.compile(r"%(?:\(([^)]+)\)(.)|(.))")
# Statements rewritten with ``$n`` placeholders, by their ``%(name)s`` text: ``None`` for a
# statement whose placeholders are anything else (psycopg converts and reports those).
_dollar_statements: dict[str, tuple[str, tuple[str, ...]] | None] = {}


def _dollar_statement(sql: str) -> tuple[str, tuple[str, ...]] | None:
    """``sql`` with its ``%(name)s`` placeholders numbered ``$1``, ``$2``, ... in order of
    first use (a repeated name keeps its number) and ``%%`` read as ``%``, as psycopg
    converts it, with the names in parameter order; ``None`` for any other placeholder.

    Why: psycopg converts a statement's placeholders at every ``execute`` and keeps the
    conversion only for statements of at most 4,096 bytes. The customer 360's statement is
    longer: its regular-expression split was ~200k instructions a request, a third of the
    GraphQL view's (feat/g13). Converted once here, the statement goes through a
    ``psycopg.RawCursor``, which sends ``$n`` statements as they are."""
    try:
        return _dollar_statements[sql]
    except KeyError:
        pass
    chunks: list[str] = []
    numbers: dict[str, str] = {}
    converted: tuple[str, tuple[str, ...]] | None = None
    end = 0
    for match in _PLACEHOLDER.finditer(sql):
        chunks.append(sql[end : match.start()])
        end = match.end()
        name, style, other = match.groups()
        if other == "%":
            chunks.append("%")
        elif name is not None and style == "s":
            chunks.append(numbers.setdefault(name, f"${len(numbers) + 1}"))
        else:
            break
    else:
        chunks.append(sql[end:])
        if numbers:
            converted = ("".join(chunks), tuple(numbers))
    if len(_dollar_statements) < _MAX_PREPARED:  # clients choose selections
        _dollar_statements[sql] = converted
    return converted


def _select_dollar(
    connection: Any, statement: tuple[str, tuple[str, ...]], params: dict[str, Any]
) -> list[Any] | None:
    """``_select``'s read of a converted statement through the connection's kept
    ``RawCursor`` (same checks, error translation and per-statement result format), or
    ``None`` where ``_select`` must answer: not psycopg 3 with a prepare threshold, a
    wrapper to run or queries to log (Django's cursor wrapper then sees the original
    text), apps not ready, or a parameter missing (psycopg reports it)."""
    entry = _cursor_entry(connection)
    if entry is None or connection.execute_wrappers or connection.queries_logged:
        return None
    if not apps.ready:
        return None
    sql, names = statement
    try:
        values = [params[name] for name in names]
    except KeyError:
        return None
    raw, zone = entry[0], entry[1]
    kept = connection.__dict__.get("_crm_raw_cursor")
    if kept is None or kept[0] is not raw or kept[1] is not zone or kept[2].closed:
        import psycopg

        cursor = psycopg.RawCursor(raw)
        use_c_timestamptz_loader(cursor)
        kept = (raw, zone, cursor, {})
        connection.__dict__["_crm_raw_cursor"] = kept
    raw_cursor = kept[2]
    binary_by_sql = kept[3]
    binary = binary_by_sql.get(sql)
    raw_cursor.format = _BINARY if binary else _TEXT
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        raw_cursor.execute(sql, values)
        rows = raw_cursor.fetchall()
    if binary is None and len(binary_by_sql) < _MAX_PREPARED:
        binary_by_sql[sql] = binary_reads_the_same(raw_cursor)
    return rows
