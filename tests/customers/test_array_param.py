"""``core.bulk.array_param``: array parameters as text literals, read back by PostgreSQL as the
same arrays psycopg's list dumping gave, through both cursor kinds (Django's client-side
binding and the server-bound cursor of ``execute_many``/``RowReader``)."""

from __future__ import annotations

import random
from decimal import Decimal

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


def test_ints_and_strings_become_literals_and_the_rest_stays_a_list() -> None:
    assert array_param([3, -1, 2**62]) == "{3,-1,4611686018427387904}"
    assert array_param(["a", 'b"c', "d\\e", ""]) == '{"a","b\\"c","d\\\\e",""}'
    assert array_param([]) == "{}"
    assert array_param(iter([1, 2])) == "{1,2}"
    for values in ([None], [1, None], ["a", None], [True], [1, "a"], ["a\x00b"], [Decimal(1)]):
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
    ]
    with connection.cursor() as client_side, bulk.server_bound_cursor() as server_side:
        for cursor in (client_side, server_side):
            for array_type, values in cases:
                new, old = _round_trip(
                    cursor, f"SELECT %s::{array_type}, %s::{array_type}", list(values)
                )
                assert new == old == list(values)


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
