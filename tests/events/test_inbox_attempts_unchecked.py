"""Migration 0019: the inbox's ``attempts`` without a CHECK constraint, both ways, on a
populated table, and the column still counted exactly as before."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus

MIGRATION = importlib.import_module("saleor_crm_plugin.migrations.0019_inbox_attempts_unchecked")
APP = "saleor_crm_plugin"

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's constraints"
)


def _checks() -> list[tuple[str, bool]]:
    with connection.schema_editor(collect_sql=True) as editor:
        return MIGRATION.checks_on_attempts(editor)


def _check_definitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'c'",
            [InboxEvent._meta.db_table],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _populate() -> list[tuple[Any, ...]]:
    """A pending, a done, a failed (counted) and an invalid row, as the code writes them."""
    for n in range(3):
        assert inbox.store_webhook(
            dedupe_key=f"w13-{n}",
            kind="order_created",
            saleor_api_url="u",
            raw_body="{}",
            kick=False,
        )
    InboxEvent.objects.filter(dedupe_key="w13-1").update(status=InboxStatus.DONE, attempts=1)
    InboxEvent.objects.filter(dedupe_key="w13-2").update(status=InboxStatus.FAILED, attempts=5)
    inbox.store_invalid(
        dedupe_key="w13-3",
        kind="order_created",
        source="webhook",
        saleor_api_url="u",
        raw_body="x",
        error="unreadable",
    )
    return _rows()


def _rows() -> list[tuple[Any, ...]]:
    return list(
        InboxEvent.objects.order_by("pk").values_list(
            "dedupe_key", "status", "attempts", "raw_body"
        )
    )


@pytest.mark.django_db
def test_the_migrated_inbox_has_no_check_on_attempts():
    assert _checks() == []
    assert _check_definitions() == []


@pytest.mark.django_db
def test_running_the_migration_again_changes_nothing():
    with connection.schema_editor(collect_sql=True) as editor:
        MIGRATION._forwards(apps, editor)
        executed = editor.collected_sql
    assert executed == []


@pytest.mark.django_db(transaction=True)
def test_backwards_restores_the_validated_check_and_forwards_drops_it_on_a_populated_table():
    rows = _populate()
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes(APP)
    try:
        executor.migrate([(APP, MIGRATION.Migration.dependencies[0][1])])
        assert _checks() == [(MIGRATION.CHECK_NAME, True)]
        assert _check_definitions() == ["CHECK ((attempts >= 0))"]
        assert _rows() == rows
        # Backwards again (an interrupted run repeated) adds nothing.
        with connection.schema_editor(collect_sql=True) as editor:
            MIGRATION._backwards(apps, editor)
            assert editor.collected_sql == []
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    assert _checks() == []
    assert _rows() == rows


@pytest.mark.django_db(transaction=True)
def test_backwards_validates_a_check_an_interrupted_run_left_not_valid():
    table = connection.ops.quote_name(InboxEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {MIGRATION.CHECK_NAME} "
            "CHECK (attempts >= 0) NOT VALID"
        )
    try:
        assert _checks() == [(MIGRATION.CHECK_NAME, False)]
        with connection.schema_editor(atomic=False) as editor:
            MIGRATION._backwards(apps, editor)
        assert _checks() == [(MIGRATION.CHECK_NAME, True)]
    finally:
        with connection.schema_editor(atomic=False) as editor:
            MIGRATION._forwards(apps, editor)
    assert _checks() == []


@pytest.mark.django_db
def test_attempts_are_counted_as_before_through_failure_and_requeue():
    """What the CHECK stood for: every write of ``attempts`` keeps it a small count >= 0."""
    assert inbox.store_webhook(
        dedupe_key="w13-count", kind="order_created", saleor_api_url="u", raw_body="{}", kick=False
    )
    (row,) = inbox._claim(10, inbox.timezone.now())
    assert row.attempts == 0
    row.attempts += 1
    inbox._mark_done(row)
    inbox._save_outcomes([row])
    assert InboxEvent.objects.get(pk=row.pk).attempts == 1
    InboxEvent.objects.filter(pk=row.pk).update(status=InboxStatus.FAILED, attempts=7)
    assert inbox.requeue_failed() == 1
    assert InboxEvent.objects.values_list("status", "attempts").get(pk=row.pk) == (
        InboxStatus.PENDING,
        0,
    )
