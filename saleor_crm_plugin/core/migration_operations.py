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
