"""The inbox's ``attempts`` without the ``CHECK (attempts >= 0)`` of a ``PositiveIntegerField``.

PostgreSQL evaluates a table's CHECK constraints on every row an INSERT or UPDATE writes, and
prepares their expressions once per statement: reading the stored expression, planning and
compiling it. Every event pays that twice, in the acknowledgement's INSERT and in the worker's
``done`` UPDATE. feat/a9 measured it at 4.4% of the INSERT's execution (``postgres --single``
under callgrind); docs/benchmarks.md ("Inbox: the attempts CHECK dropped") has this branch's
figures for both statements.

Only the inbox's own code writes the column: ``0`` on insert, ``attempts + 1`` per claim, the
counted value when an attempt fails, ``0`` again in ``requeue_failed``. None of them can make
it negative, so the constraint guarded nothing that can happen.

On PostgreSQL the constraint is found by what it is (a CHECK on ``attempts`` alone), not by
Django's generated name, and dropped without a table scan. Backwards adds it ``NOT VALID``
and validates it in a second transaction: the ``ACCESS EXCLUSIVE`` lock of the first is held
only for the catalogue change, and the scan of the rows runs under ``SHARE UPDATE EXCLUSIVE``,
which lets the webhook's inserts go on. Both directions do nothing when already done, so an
interrupted run is repeated. SQLite (the demo) runs the plain ``AlterField``.
"""

from typing import Any

from django.db import migrations, models

from saleor_crm_plugin.core.migration_operations import DatabaseWorkUnlessPostgreSQL

TABLE = "saleor_crm_plugin_inboxevent"
COLUMN = "attempts"
# The name Django gave the constraint (``<table>_<column>_check``), for the way back.
CHECK_NAME = "saleor_crm_plugin_inboxevent_attempts_check"

# CHECK constraints of the table over exactly that one column: name and whether validated.
_CHECKS_ON_COLUMN = """
    SELECT c.conname, c.convalidated
    FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
    WHERE c.conrelid = to_regclass(%s) AND c.contype = 'c' AND cardinality(c.conkey) = 1
      AND a.attname = %s
    ORDER BY c.conname
"""


def checks_on_attempts(schema_editor: Any) -> list[tuple[str, bool]]:
    """``(name, validated)`` of each CHECK constraint on ``attempts`` alone."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_CHECKS_ON_COLUMN, [schema_editor.quote_name(TABLE), COLUMN])
        return [(name, bool(valid)) for name, valid in cursor.fetchall()]


def _forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for name, _ in checks_on_attempts(schema_editor):
        schema_editor.execute(f"ALTER TABLE {quote(TABLE)} DROP CONSTRAINT IF EXISTS {quote(name)}")


def _backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    existing = dict(checks_on_attempts(schema_editor))
    if CHECK_NAME not in existing:
        schema_editor.execute(
            f"ALTER TABLE {quote(TABLE)} ADD CONSTRAINT {quote(CHECK_NAME)} "
            f"CHECK ({quote(COLUMN)} >= 0) NOT VALID"
        )
    if not existing.get(CHECK_NAME, False):
        schema_editor.execute(f"ALTER TABLE {quote(TABLE)} VALIDATE CONSTRAINT {quote(CHECK_NAME)}")


class Migration(migrations.Migration):
    # Not atomic, so that backwards validates in a transaction of its own (see above).
    atomic = False

    dependencies = [
        ("saleor_crm_plugin", "0018_w10_orderline_order_unconstrained"),
    ]

    operations = [
        migrations.RunPython(_forwards, _backwards),
        DatabaseWorkUnlessPostgreSQL(
            [
                migrations.AlterField(
                    model_name="inboxevent",
                    name="attempts",
                    field=models.IntegerField(default=0),
                )
            ]
        ),
    ]
