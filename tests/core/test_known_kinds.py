"""The set-wise writes (``update_rows``' ``UPDATE ... FROM unnest``,
``insert_ignoring_conflicts``, ``upsert_rows``) take each column's kinds from
``prepared_columns`` (``_known_kinds``) for their array literals instead of another pass over
the values: the literals are those a fresh pass gives, on generated point lots, ledger entries
and customers, the statements and parameters sent are the same, and a column swapped in after
preparation is not taken for the recorded one."""

from __future__ import annotations

import random
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.customers.models import Customer
from tests.core.test_copy_text_layout import _ZONES, _entries, _lots, _text

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="arrays are PostgreSQL's")


def _customers(rng: random.Random, count: int) -> list[Customer]:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Customer(
            id=rng.randrange(1, 10**6) if rng.random() < 0.9 else None,
            saleor_user_id=None if rng.random() < 0.3 else _text(rng, plain=True) + str(n),
            email=_text(rng, plain=rng.random() < 0.8),
            is_active=rng.choice([None, True, False]),
            date_joined=rng.choice(
                [None, moment, (moment + timedelta(days=n)).astimezone(rng.choice(_ZONES))]
            ),
            metadata=rng.choice([{}, {}, {"a": "\t"}, []]),
            field_versions=rng.choice([{}, {"email": "0|x"}]),
            order_count=rng.choice([0, 3, True]) if rng.random() < 0.05 else rng.randrange(9),
            last_order_at=rng.choice([None, moment.replace(tzinfo=None)])
            if rng.random() < 0.03
            else None,
        )
        for n in range(count)
    ]


_MAKERS = [_lots, _entries, _customers]


@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime:RuntimeWarning")
@pytest.mark.parametrize("make", _MAKERS)
@pytest.mark.parametrize("json_text", [False, True])
def test_recorded_kinds_give_a_fresh_pass_s_types_and_literals(make, json_text):
    rng = random.Random(170)
    model = make(rng, 1)[0]._meta.model
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    used = 0
    for _ in range(300):
        rows = make(rng, rng.choice([0, 1, 2, 5, 30]))
        prepared = bulk.prepared_columns(rows, fields, extra_pk=True, json_text=json_text)
        known = bulk._known_kinds(prepared)
        assert len(known) == len(prepared)
        for column, kinds in zip(prepared, known, strict=True):
            array = list(column)
            assert bulk.array_param(array, kinds) == bulk.array_param(array)
            used += kinds is not None
        index = rng.randrange(len(prepared))
        prepared[index] = [float(n) for n in range(len(rows))]
        assert bulk._known_kinds(prepared)[index] is None
    assert used > 300 * 5


def _plain(value: Any) -> Any:
    """A bound value comparable by ``==`` (psycopg's ``Jsonb`` wrapper compares by identity)."""
    return (type(value).__name__, value.obj) if hasattr(value, "obj") else value


@contextmanager
def _recording(sent: list[Any]):
    class Cursor:
        def execute(self, sql: str, params: Any) -> None:
            sent.append((sql, list(map(_plain, params))))

        def executemany(self, sql: str, params: Any) -> None:
            sent.append((sql, [list(map(_plain, p)) for p in params]))

    yield Cursor()


@pg_only
@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime:RuntimeWarning")
@pytest.mark.parametrize("make", _MAKERS)
def test_writes_bind_what_they_bound(make, monkeypatch):
    """The statements and parameters each write sends, with the recorded kinds and without
    (``_known_kinds`` answering None for every column)."""
    monkeypatch.setattr(bulk, "_mark_saved", lambda rows: None)
    monkeypatch.setattr(bulk, "_needs_pre_save", lambda field: False)  # no clock in the rows
    rng = random.Random(171)
    model = make(rng, 1)[0]._meta.model
    names = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    for _ in range(120):
        seed = rng.randrange(10**9)
        count = rng.choice([1, 2, 5, 30])
        sent: dict[bool, list[Any]] = {}
        for recorded in (True, False):
            same = random.Random(seed)
            rows = make(same, count)
            for row in rows:
                if row.pk is None:
                    row.pk = same.randrange(1, 10**6)
            out: list[Any] = []
            with monkeypatch.context() as patch:
                patch.setattr(bulk, "server_bound_cursor", lambda out=out: _recording(out))
                if not recorded:
                    patch.setattr(bulk, "_known_kinds", lambda by_column: [None] * len(by_column))
                bulk.update_rows(model, rows, same.sample(names, 3))
                if model is not Customer:
                    bulk.insert_ignoring_conflicts(model, rows)
                key = [model._meta.get_field(names[0])]
                bulk.upsert_rows(model, rows, key, [model._meta.get_field(n) for n in names[1:4]])
            sent[recorded] = out
        assert sent[True] == sent[False]
        assert sent[True]
