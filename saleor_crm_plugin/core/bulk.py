"""Bulk writes that Django's ORM makes expensive in Python, shared by every domain.

``bulk_update`` builds a CASE expression per field and row, and ``bulk_create`` binds every
parameter of one huge INSERT on the client; for the batches the inbox and the ledger write,
that costs more than the database work. These helpers keep the rows as model instances (so
field conversion stays Django's) and send them the cheap way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models


def update_rows(model: type[models.Model], rows: Sequence[Any], names: Sequence[str]) -> None:
    """One prepared ``UPDATE ... WHERE pk = %s`` executed for many rows (pipelined by
    psycopg 3, so one round trip)."""
    if not rows:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in dict.fromkeys(names)]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET "
        + ", ".join(f"{quote(c.column)} = %s" for c in columns)
        + f" WHERE {quote(meta.pk.column)} = %s"
    )
    params = [
        [c.get_db_prep_save(getattr(row, c.attname), connection) for c in columns] + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def insert_rows(
    model: type[models.Model],
    rows: list[Any],
    *,
    copy_threshold: int = 1,
    set_ids: bool = True,
) -> None:
    """Insert rows; on PostgreSQL, batches of ``copy_threshold`` rows or more are streamed with
    ``COPY``. With ``set_ids`` the primary keys are taken from the sequence first and set on
    the rows, as ``bulk_create`` would; without, the database assigns them and nobody needs
    them. Unique constraints still apply (COPY fails as a whole, like INSERT)."""
    if not rows:
        return
    if connection.vendor != "postgresql" or len(rows) < copy_threshold:
        model.objects.bulk_create(rows)
        return
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    for row in rows:
        for f in fields:
            f.pre_save(row, add=True)  # auto_now and friends, as INSERT would
    with connection.cursor() as cursor:
        if set_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(rows)],
            )
            for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
                row.pk = pk
        columns = [meta.pk, *fields] if set_ids else fields
        names = ", ".join(quote(f.column) for f in columns)
        # Django's cursor wrapper has no copy(); the psycopg cursor under it does.
        with cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [f.get_db_prep_save(getattr(row, f.attname), connection) for f in columns]
                )
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias
