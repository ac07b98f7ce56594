"""``core.rows.select_rows`` (the customer 360's one statement) converts a statement's
``%(name)s`` placeholders to ``$n`` once and sends it through a kept ``psycopg.RawCursor``,
instead of letting psycopg split statements longer than 4,096 bytes at every execute. The
rows must equal what ``_select`` (psycopg's own conversion) reads, on generated statements
and values; anything but ``%(name)s`` and ``%%`` must go to psycopg unchanged."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import ProgrammingError, connections
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.core import rows

pytestmark = pytest.mark.django_db
connection = connections["default"]

# Values with their casts: each read back as PostgreSQL typed it.
VALUES: list[tuple[Any, str]] = [
    (0, "int8"),
    (-(2**40), "int8"),
    (7, "int4"),
    ("Zoë %s %(x)s %% 漢字", "text"),
    ("", "text"),
    (None, "text"),
    (True, "bool"),
    (1.5, "float8"),
    (Decimal("12.340"), "numeric"),
    (datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC), "timestamptz"),
    ([1, 2, 3], "int8[]"),
]
# Text between placeholders, including ``%%`` (one ``%`` in the statement) and a long
# comment that takes the statement past psycopg's 4,096-byte cache limit.
LITERALS = ["'a%%b'", "'%%'", "'x'", "format('%%s', 1)", "'/* long */'"]


def _statement(rng: random.Random) -> tuple[str, dict[str, Any]]:
    names = [f"p{n}" for n in range(rng.randint(1, 6))]
    params = {name: VALUES[rng.randrange(len(VALUES))] for name in names}
    columns = []
    for _ in range(rng.randint(1, 10)):
        if rng.random() < 0.3:
            columns.append(rng.choice(LITERALS))
        else:
            name = rng.choice(names)
            columns.append(f"%({name})s::{params[name][1]}")
    for name in names:  # every parameter used at least once
        columns.append(f"%({name})s::{params[name][1]}")
    padding = "\n-- " + "y" * rng.choice([10, 5000]) + "\n"
    sql = f"SELECT {', '.join(columns)}{padding}"
    return sql, {name: value for name, (value, _) in params.items()}


def _raw_cursor() -> Any:
    kept = connection.__dict__.get("_crm_raw_cursor")
    return None if kept is None else kept[2]


@pytest.mark.parametrize("seed", range(40))
def test_rows_equal_psycopgs_own_conversion(seed: int) -> None:
    rng = random.Random(seed)
    sql, params = _statement(rng)
    expected = rows._select(connection, sql, dict(params), False)
    connection.__dict__.pop("_crm_raw_cursor", None)
    # Twice: the second read uses the kept cursor and the statement's learnt format.
    for _ in range(2):
        got = rows.select_rows(sql, dict(params))
        assert [[(type(v), v) for v in row] for row in got] == [
            [(type(v), v) for v in row] for row in expected
        ]
    converted = rows._dollar_statement(sql)
    assert converted is not None
    assert _raw_cursor() is not None  # the raw path answered
    # The very text psycopg's conversion sends (Django logs it): the same prepared statement.
    with CaptureQueriesContext(connection) as queries:
        rows._select(connection, sql, dict(params), False)
    assert [q["sql"] for q in queries] == [converted[0]]


def test_conversion_numbers_names_in_order_of_first_use() -> None:
    sql = "SELECT %(b)s, %(a)s, %(b)s, '%%', 100%%\nFROM t WHERE x = %(c)s"
    assert rows._dollar_statement(sql) == (
        "SELECT $1, $2, $1, '%', 100%\nFROM t WHERE x = $3",
        ("b", "a", "c"),
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT %s",  # positional
        "SELECT %(a)b",  # binary format
        "SELECT %(a)t",  # text format
        "SELECT %(a)s, %s",  # mixed
        "SELECT 1 % 2",  # psycopg's error for a lone %
        "SELECT 1",  # no placeholder at all
        "SELECT %(a",  # incomplete
    ],
)
def test_other_placeholders_are_left_to_psycopg(sql: str) -> None:
    assert rows._dollar_statement(sql) is None


def test_errors_and_logging_as_before() -> None:
    # A missing parameter: psycopg's own error, through Django's translation.
    sql = "SELECT %(a)s::int, %(b)s::int"
    with pytest.raises(ProgrammingError) as before:
        rows._select(connection, sql, {"a": 1}, False)
    with pytest.raises(ProgrammingError) as after:
        rows.select_rows(sql, {"a": 1})
    assert str(after.value) == str(before.value) == "query parameter missing: b"
    # A positional statement with a dict: psycopg's own error either way.
    with pytest.raises(TypeError) as before:
        rows._select(connection, "SELECT %s::int", {"a": 1}, False)
    with pytest.raises(TypeError) as after:
        rows.select_rows("SELECT %s::int", {"a": 1})
    assert str(after.value) == str(before.value)
    # Logged queries keep Django's cursor wrapper: logged as ``_select`` logs them.
    with CaptureQueriesContext(connection) as before:
        assert rows._select(connection, sql, {"a": 1, "b": 2}, False) == [(1, 2)]
    with CaptureQueriesContext(connection) as after:
        assert rows.select_rows(sql, {"a": 1, "b": 2}) == [(1, 2)]
    assert [q["sql"] for q in after] == [q["sql"] for q in before] == ["SELECT $1::int, $2::int"]
