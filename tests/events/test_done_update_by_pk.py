"""The ``done`` UPDATE of rows the worker translated finds them by the primary key.

``_translated_done_statement`` joins the batch's per-row arrays by id with the arrays as
sub-selects, so the planner plans a nested loop of primary key look-ups for any batch instead
of hashing a sequential scan of the whole inbox (what a custom plan of a batch of 500 did
while the table held fewer than ~20,000 rows). These tests pin that it writes exactly what
the statement as shipped before wrote (kept verbatim below), over generated batches and
values, and that its plan on a populated inbox never scans the table.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from saleor_crm_plugin.core.bulk import array_param
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the statement is PostgreSQL's"
)

# ``_translated_done_statement`` as shipped before feat/p14, verbatim (its table and columns
# quoted as Django quotes them), with its parameters in the same order.
OLD_STATEMENT = (
    'UPDATE "saleor_crm_plugin_inboxevent" AS t SET "status" = \'done\', '
    '"attempts" = t."attempts" + 1, "last_error" = \'\', "processed_at" = %s, '
    '"source" = v.source, "object_id" = v.object_id, "issued_at" = v.issued_at, '
    '"subject_user_id" = v.subject_user_id, "subject_email_hash" = v.subject_email_hash '
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], "
    "%s::text[]) AS v(id, source, object_id, issued_at, subject_user_id, subject_email_hash) "
    'WHERE t."id" = v.id'
)


def old_save_translated_done(rows: list[InboxEvent], now: datetime) -> None:
    params = [
        now,
        array_param([r.pk for r in rows]),
        *(array_param([getattr(r, name) for r in rows]) for name in inbox._TRANSLATED_COLUMNS),
    ]
    with connection.cursor() as cursor:
        cursor.execute(OLD_STATEMENT, params)


TEXTS = ["", "a", "user:42", "O'Brien", 'quote " and \\ slash', "{brace,comma}", "NULL", "é ✓ 中"]


def _text(rng: random.Random, limit: int) -> str:
    if rng.random() < 0.5:
        return rng.choice(TEXTS)[:limit]
    return "".join(rng.choice("abcXYZ019 _-:'\"\\,{}") for _ in range(rng.randint(1, 40)))[:limit]


def _stored_rows(rng: random.Random, count: int, body: int = 0) -> list[int]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [
        InboxEvent(
            dedupe_key=f"k{i}",
            kind="order_created",
            source="webhook",
            raw_body=json.dumps({"n": i, "pad": "x" * body}),
            status=rng.choice([InboxStatus.PENDING] * 4 + [InboxStatus.DONE]),
            attempts=rng.randint(0, 3),
            last_error=rng.choice(["", "boom"]),
            received_at=start + timedelta(seconds=i),
            available_at=start + timedelta(seconds=i),
        )
        for i in range(count)
    ]
    return [row.pk for row in InboxEvent.objects.bulk_create(rows)]


def _batch(rng: random.Random, ids: list[int]) -> list[InboxEvent]:
    rows = []
    for pk in rng.sample(ids, rng.randint(1, len(ids))):
        row = InboxEvent(pk=pk)
        row.source = rng.choice(["subscription", "legacy", ""])
        row.object_id = _text(rng, 255)
        row.issued_at = (
            None
            if rng.random() < 0.2
            else datetime(2026, 11, 1, tzinfo=UTC) + timedelta(microseconds=rng.randint(0, 10**12))
        )
        row.subject_user_id = _text(rng, 255)
        row.subject_email_hash = _text(rng, 64)
        rows.append(row)
    return rows


def _table() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute('SELECT * FROM "saleor_crm_plugin_inboxevent" ORDER BY id')
        return cursor.fetchall()


def _written_by(save, rows: list[InboxEvent], now: datetime) -> list[tuple]:
    with transaction.atomic():
        save(rows, now)
        written = _table()
        transaction.set_rollback(True)
    return written


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(6))
def test_the_new_statement_writes_what_the_old_one_wrote(seed):
    rng = random.Random(seed)
    ids = _stored_rows(rng, rng.choice([1, 7, 60, 240]))
    before = _table()
    for round_ in range(8):
        rows = _batch(rng, ids)
        now = datetime(2026, 12, 2, tzinfo=UTC) + timedelta(seconds=round_)
        old = _written_by(old_save_translated_done, rows, now)
        new = _written_by(inbox._save_translated_done, rows, now)
        assert new == old
        assert new != before  # the batch did write something
        assert _table() == before  # both rolled back: the next round starts from the same rows


@pytest.mark.django_db
def test_rows_outside_the_batch_are_untouched_and_duplicated_ids_do_not_double_count():
    rng = random.Random(99)
    ids = _stored_rows(rng, 30)
    rows = _batch(rng, ids[:10])
    now = datetime(2026, 12, 2, tzinfo=UTC)
    before = {row[0]: row for row in _table()}

    after = {row[0]: row for row in _written_by(inbox._save_translated_done, rows, now)}

    batch = {row.pk for row in rows}
    assert {pk for pk in after if after[pk] != before[pk]} == batch
    attempts = [f.attname for f in InboxEvent._meta.concrete_fields].index("attempts")
    assert all(after[pk][attempts] == before[pk][attempts] + 1 for pk in batch)


def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


@pytest.mark.django_db
def test_a_batch_of_500_on_a_populated_inbox_is_found_by_the_primary_key():
    """A custom plan (the batch's arrays as constants, as psycopg's first executions and
    every execution with preparing off bind them; Django's cursor binds them in the SQL
    text, which plans the same way): the statement as shipped before hashed a
    sequential scan of this 4,000-row inbox (bodies of ~1.8 kB, kept in the row as the
    benchmark's ~5.6 kB compressed bodies are not); the new one reads the 500 rows by the
    primary key."""
    rng = random.Random(7)
    ids = _stored_rows(rng, 4000, body=1800)
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "saleor_crm_plugin_inboxevent"')
    rows = [InboxEvent(pk=pk, object_id=f"o{pk}") for pk in rng.sample(ids, 500)]
    params = [
        datetime(2026, 12, 2, tzinfo=UTC),
        array_param([r.pk for r in rows]),
        *(array_param([getattr(r, name) for r in rows]) for name in inbox._TRANSLATED_COLUMNS),
    ]

    def plan(sql: str, bound: list) -> list[dict]:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, bound)
            document = cursor.fetchone()[0]
        if isinstance(document, str):
            document = json.loads(document)
        return _plan_nodes(document[0]["Plan"])

    new = plan(inbox._translated_done_statement(), params)
    scans = [n["Node Type"] for n in new if n.get("Relation Name") == InboxEvent._meta.db_table]
    assert "Seq Scan" not in scans, scans
    assert any("Index" in scan for scan in scans), scans
    old = plan(OLD_STATEMENT, params)
    scans = [n["Node Type"] for n in old if n.get("Relation Name") == InboxEvent._meta.db_table]
    assert "Seq Scan" in scans, scans  # what the ``ANY`` is for
