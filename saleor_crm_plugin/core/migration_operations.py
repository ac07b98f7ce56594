"""Migration operations shared by the schema migrations that change indexes concurrently.

A migration that builds or drops indexes ``CONCURRENTLY`` on PostgreSQL does that work in its
own ``RunPython`` (it must check what exists, so an interrupted run can be repeated), yet the
model state, and every other database (the demo's SQLite), must see the plain operations.
Kept outside the migration modules so that migrations can import it (their module names start
with a digit) and so that later migrations share it instead of copying it.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


class DatabaseWorkUnlessPostgreSQL(migrations.SeparateDatabaseAndState):
    """Changes the state with ``operations`` everywhere and runs them on every database but
    PostgreSQL, where the migration's own ``RunPython`` stands for them."""

    def __init__(self, operations: list[Any]) -> None:
        super().__init__(database_operations=operations, state_operations=operations)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


PATTERN_OPCLASSES = ("varchar_pattern_ops", "text_pattern_ops")

# The single-column, non-partial, non-expression indexes on one column of a table: name,
# uniqueness, operator class, and whether a constraint (unique, primary key, exclusion)
# owns the index.
_INDEXES_ON_COLUMN = """
    SELECT i.relname, x.indisunique, o.opcname, c.conname IS NOT NULL
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
    JOIN pg_opclass o ON o.oid = x.indclass[0]
    LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid
    WHERE x.indrelid = to_regclass(%s) AND x.indnatts = 1 AND x.indpred IS NULL
      AND x.indexprs IS NULL AND a.attname = %s
    ORDER BY i.relname
"""


def indexes_on_column(
    schema_editor: Any, table: str, column: str
) -> list[tuple[str, bool, str, bool]]:
    """``(name, unique, opclass, owned_by_constraint)`` of each single-column index of
    ``table.column``, found by what it is rather than by name: Django's generated names
    depend on its version and on how the column was created."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_INDEXES_ON_COLUMN, [schema_editor.quote_name(table), column])
        return [tuple(row) for row in cursor.fetchall()]  # type: ignore[misc]


def drop_index_concurrently(schema_editor: Any, name: str) -> None:
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


def create_index_concurrently(
    schema_editor: Any, table: str, column: str, *, suffix: str = "", opclass: str = ""
) -> None:
    """The index Django's ``db_index=True`` (``suffix=""``) or its PostgreSQL ``LIKE`` copy
    (``suffix="_like"``, ``opclass="varchar_pattern_ops"``) would create, under Django's name."""
    quote = schema_editor.quote_name
    name = schema_editor._create_index_name(table, [column], suffix=suffix)
    target = f"{quote(column)} {opclass}".rstrip()
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(name)} ON {quote(table)} ({target})"
    )
