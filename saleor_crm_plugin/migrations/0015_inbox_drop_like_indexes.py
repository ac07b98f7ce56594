"""Drop the inbox's three ``varchar_pattern_ops`` indexes, which only ``LIKE`` could use.

On PostgreSQL Django gives every ``CharField`` with ``unique=True`` or ``db_index=True`` a
second, ``*_like`` index for ``LIKE 'prefix%'`` lookups. The inbox has three (``dedupe_key``,
``subject_user_id``, ``subject_email_hash``); nothing queries them with ``LIKE``, and every
acknowledged webhook's insert (and every non-HOT update of the subject columns by the worker)
maintained them: dropping them saved about 5% of the insert's PostgreSQL CPU.

The model now declares the unique key and the two indexes in ``Meta`` (which makes no
``_like`` copy), so its state changes without rebuilding anything: on PostgreSQL the existing
unique constraint and indexes are renamed to their declared names (found by their column, so
whatever names an older Django gave them) and the ``_like`` ones dropped ``CONCURRENTLY``,
which takes no lock that would hold back the webhook's inserts, and cannot run in a
transaction: hence ``atomic = False``. Each step is idempotent, so a run interrupted half-way
can simply be repeated. ``ON CONFLICT (dedupe_key)`` keeps its unique index throughout.
SQLite (the demo) has no ``_like`` indexes and runs the state operations as they are.
"""

from typing import Any

from django.db import migrations, models

from saleor_crm_plugin.core.migration_operations import DatabaseWorkUnlessPostgreSQL

TABLE_MODEL = "inboxevent"
# column -> (declared name, unique)
DECLARED = {
    "dedupe_key": ("crm_inbox_dedupe_key_uniq", True),
    "subject_user_id": ("crm_inbox_subject_user_idx", False),
    "subject_email_hash": ("crm_inbox_subject_email_idx", False),
}
PATTERN_OPCLASSES = ("varchar_pattern_ops", "text_pattern_ops")

# The single-column, non-partial indexes on one column: name, backing unique constraint (if
# any), uniqueness, operator class.
_INDEXES_ON_COLUMN = """
    SELECT i.relname, c.conname, x.indisunique, o.opcname
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
    JOIN pg_opclass o ON o.oid = x.indclass[0]
    LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.contype = 'u'
    WHERE x.indrelid = to_regclass(%s) AND x.indnatts = 1 AND x.indpred IS NULL
      AND x.indexprs IS NULL AND a.attname = %s
"""

STATE_OPERATIONS = [
    migrations.AlterField(
        model_name=TABLE_MODEL,
        name="dedupe_key",
        field=models.CharField(max_length=128),
    ),
    migrations.AlterField(
        model_name=TABLE_MODEL,
        name="subject_user_id",
        field=models.CharField(blank=True, default="", max_length=255),
    ),
    migrations.AlterField(
        model_name=TABLE_MODEL,
        name="subject_email_hash",
        field=models.CharField(blank=True, default="", max_length=64),
    ),
    migrations.AddConstraint(
        model_name=TABLE_MODEL,
        constraint=models.UniqueConstraint(fields=("dedupe_key",), name=DECLARED["dedupe_key"][0]),
    ),
    migrations.AddIndex(
        model_name=TABLE_MODEL,
        index=models.Index(fields=["subject_user_id"], name=DECLARED["subject_user_id"][0]),
    ),
    migrations.AddIndex(
        model_name=TABLE_MODEL,
        index=models.Index(fields=["subject_email_hash"], name=DECLARED["subject_email_hash"][0]),
    ),
]


def _table(apps: Any) -> str:
    return apps.get_model("saleor_crm_plugin", "InboxEvent")._meta.db_table


def _forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = _table(apps)
    quote = schema_editor.quote_name
    for column, (name, unique) in DECLARED.items():
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(_INDEXES_ON_COLUMN, [table, column])
            found = cursor.fetchall()
        kept = False
        for index, constraint, is_unique, opclass in found:
            if opclass in PATTERN_OPCLASSES:
                schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(index)}")
            elif kept or is_unique != unique or (unique and constraint is None):
                continue  # not the index this column's declaration stands for
            else:
                kept = True
                if unique and constraint != name:
                    schema_editor.execute(
                        f"ALTER TABLE {quote(table)} "
                        f"RENAME CONSTRAINT {quote(constraint)} TO {quote(name)}"
                    )
                elif not unique and index != name:
                    schema_editor.execute(f"ALTER INDEX {quote(index)} RENAME TO {quote(name)}")
        if kept:
            continue
        if unique:  # never expected: the column was created unique
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} UNIQUE ({quote(column)})"
            )
        else:
            schema_editor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(name)} "
                f"ON {quote(table)} ({quote(column)})"
            )


def _backwards(apps: Any, schema_editor: Any) -> None:
    """Back to what ``unique=True`` / ``db_index=True`` create, under Django's names."""
    if schema_editor.connection.vendor != "postgresql":
        return
    table = _table(apps)
    quote = schema_editor.quote_name
    for column, (name, unique) in DECLARED.items():
        old = schema_editor._create_index_name(table, [column], suffix="_uniq" if unique else "")
        if unique:
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(name)} TO {quote(old)}"
            )
        else:
            schema_editor.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(old)}")
        like = schema_editor._create_index_name(table, [column], suffix="_like")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(like)} "
            f"ON {quote(table)} ({quote(column)} varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("saleor_crm_plugin", "0014_orderline_fillfactor"),
    ]

    operations = [
        migrations.RunPython(_forwards, _backwards),
        DatabaseWorkUnlessPostgreSQL(STATE_OPERATIONS),
    ]
