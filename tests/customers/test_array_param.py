"""``core.bulk.array_param``: array parameters as text literals, read back by PostgreSQL as the
same arrays psycopg's list dumping gave, through both cursor kinds (Django's client-side
binding and the server-bound cursor of ``execute_many``/``RowReader``)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.core.bulk import array_param
from saleor_crm_plugin.customers.models import Customer

STRINGS = [
    "a",
    'quote"inside',
    "back\\slash",
    "",
    "NULL",
    "null",
    " leading and trailing ",
    "comma,brace{}",
    "é€😀",
    "tab\there",
    "new\nline",
    '\\"',
    "{}",
    '"',
]


AWARE = datetime(2026, 11, 30, 10, 15, 30, 123456, tzinfo=UTC)
ELSEWHERE = datetime(2026, 7, 1, 14, 30, tzinfo=ZoneInfo("Europe/Paris"))
ODD_OFFSET = datetime(1900, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
DECIMALS = [
    Decimal("0"),
    Decimal("-0.00"),
    Decimal("12.50"),
    Decimal("-3.1415926535897932384626"),
    Decimal("1E+3"),
    Decimal("0E-7"),
    Decimal("99999999999999999999.99"),
]


def test_plain_values_become_literals_and_the_rest_stays_a_list() -> None:
    assert array_param([3, -1, 2**62]) == "{3,-1,4611686018427387904}"
    assert array_param(["a", 'b"c', "d\\e", ""]) == '{"a","b\\"c","d\\\\e",""}'
    assert array_param([]) == "{}"
    assert array_param(iter([1, 2])) == "{1,2}"
    assert array_param([None]) == "{NULL}"
    assert array_param([1, None]) == "{1,NULL}"
    assert array_param(["a", None, "NULL"]) == '{"a",NULL,"NULL"}'
    assert array_param([Decimal("1.50"), None]) == "{1.50,NULL}"
    assert array_param([AWARE]) == '{"2026-11-30 10:15:30.123456+00:00"}'
    assert array_param([None, AWARE]) == '{NULL,"2026-11-30 10:15:30.123456+00:00"}'
    for values in (
        [True],
        [1, "a"],
        [1, None, "a"],
        ["a\x00b"],
        ["a\x00b", None],
        [Decimal("NaN")],
        [Decimal("Infinity"), None],
        [AWARE.replace(tzinfo=None)],
        [AWARE, AWARE.replace(tzinfo=None)],
        [1.5],
    ):
        assert array_param(values) == values
        assert type(array_param(values)) is list


def _round_trip(cursor, sql: str, values: list) -> tuple:  # type: ignore[no-untyped-def]
    cursor.execute(sql, [array_param(values), values])
    return cursor.fetchone()


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL arrays")
def test_postgresql_reads_the_literal_as_the_list_it_stands_for() -> None:
    rng = random.Random(5)
    pool = [
        *STRINGS,
        *("".join(rng.choices("ab\"\\, {}\t\n'é", k=rng.randint(0, 6))) for _ in range(200)),
    ]
    cases = [
        ("text[]", STRINGS),
        ("text[]", pool),
        ("text[]", []),
        ("bigint[]", [0, 1, -1, 2**63 - 1, -(2**63), *range(500)]),
        ("integer[]", [5, -5, 2**31 - 1]),
        ("bigint[]", []),
        ("text[]", [*STRINGS, None, "NULL", None]),
        ("bigint[]", [None, 1, None, -(2**63)]),
        ("bigint[]", [None, None]),
        ("numeric[]", DECIMALS),
        ("numeric[]", [None, *DECIMALS, None]),
        ("numeric(20, 2)[]", [Decimal("1.005"), Decimal("-2"), None]),
        ("timestamptz[]", [AWARE, ELSEWHERE, ODD_OFFSET, AWARE.replace(microsecond=0)]),
        ("timestamptz[]", [None, ELSEWHERE, None]),
    ]
    with connection.cursor() as client_side, bulk.server_bound_cursor() as server_side:
        for cursor in (client_side, server_side):
            for array_type, values in cases:
                new, old = _round_trip(
                    cursor, f"SELECT %s::{array_type}, %s::{array_type}", list(values)
                )
                assert new == old
                assert list(map(str, new)) == list(map(str, old))  # numeric scales too
                if "(" not in array_type:  # numeric(20, 2) rounds, both the same way
                    assert new == list(values)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL arrays")
def test_in_array_and_any_of_find_the_same_rows_with_literals() -> None:
    names = ['x"y', "a\\b", "plain", "", "NULL"]
    for index, name in enumerate(names):
        Customer.objects.create(saleor_user_id=name, email=f"c{index}@example.com")
    found = Customer.objects.filter(bulk.InArray(bulk.models.F("saleor_user_id"), names))
    assert sorted(found.values_list("saleor_user_id", flat=True)) == sorted(names)
    pks = list(Customer.objects.values_list("pk", flat=True))
    assert Customer.objects.filter(bulk.InArray(bulk.models.F("pk"), pks)).count() == len(names)
    where, params = bulk.any_of("t.saleor_user_id", names, "text")
    assert isinstance(params[0], str)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {Customer._meta.db_table} AS t WHERE {where}", params)
        assert cursor.fetchone()[0] == len(names)
