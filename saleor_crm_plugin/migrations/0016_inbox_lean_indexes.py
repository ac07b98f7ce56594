"""Index only what the inbox's rare queries look for, so a delivery writes fewer index entries.

Every event writes its inbox row twice: the acknowledgement inserts it, the worker updates it
to ``done`` (status, attempts, processed time, subject columns). The update is never HOT
(``status`` is in the pending index's predicate), so both writes add an entry to every index
of the table whose predicate the row meets: eleven per event with the indexes of 0015.

Three of them served rare queries only:

* ``(status, received_at)``, for ``prune`` (done and invalid rows past retention, once a day),
  ``requeue_failed`` and ``replay-inbox``'s counts. Pending rows are counted through the
  pending index already; failed and invalid rows are few: they now have a partial index of
  their own (``crm_inbox_unresolved_idx``), and the done rows ``prune`` deletes are found
  through a BRIN index on ``received_at`` (PostgreSQL only, not in the model's state: SQLite
  has no BRIN). A BRIN index is summarised by ranges of pages; inserting a row into a range
  that is not summarised yet (the table's newest pages, where both the inserts and the
  updated rows go) writes nothing.
* ``subject_user_id`` and ``subject_email_hash``, for GDPR erasure, which never looks for an
  empty value: the acknowledgement inserts raw rows with both empty, so both indexes took an
  entry for ``''`` per delivery. They are now partial (``<> ''``).

Per event that leaves three entries for the insert (primary key, dedupe key, pending) and two
to four for the update (primary key, dedupe key, the subject columns that are set).

On PostgreSQL the new indexes are built and the old ones dropped ``CONCURRENTLY`` (no lock
that would hold back the webhook's inserts; new indexes first, so no query goes without one
meanwhile), outside a transaction: hence ``atomic = False``. Each step checks what exists, so
a run interrupted half-way is simply repeated (an index left invalid by an interrupted build
is dropped and built again). SQLite (the demo) runs the state operations as they are.
"""

from typing import Any

from django.db import migrations, models

from saleor_crm_plugin.core.migration_operations import DatabaseWorkUnlessPostgreSQL

TABLE_MODEL = "inboxevent"
BRIN_NAME = "crm_inbox_received_brin"
OLD_INDEXES = [
    models.Index(fields=["status", "received_at"], name="crm_inbox_status_idx"),
    models.Index(fields=["subject_user_id"], name="crm_inbox_subject_user_idx"),
    models.Index(fields=["subject_email_hash"], name="crm_inbox_subject_email_idx"),
]
NEW_INDEXES = [
    models.Index(
        condition=models.Q(status__in=["failed", "invalid"]),
        fields=["status", "received_at"],
        name="crm_inbox_unresolved_idx",
    ),
    models.Index(
        condition=models.Q(("subject_user_id", ""), _negated=True),
        fields=["subject_user_id"],
        name="crm_inbox_subj_user_set_idx",
    ),
    models.Index(
        condition=models.Q(("subject_email_hash", ""), _negated=True),
        fields=["subject_email_hash"],
        name="crm_inbox_subj_email_set_idx",
    ),
]

STATE_OPERATIONS = [
    *(migrations.RemoveIndex(model_name=TABLE_MODEL, name=index.name) for index in OLD_INDEXES),
    *(migrations.AddIndex(model_name=TABLE_MODEL, index=index) for index in NEW_INDEXES),
]

# ``indisvalid`` of an index of that name, or no row.
_INDEX_VALID = "SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass(%s)"


def _validity(schema_editor: Any, name: str) -> bool | None:
    """``True`` for a valid index of that name, ``False`` for one an interrupted concurrent
    build left invalid, ``None`` for none."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_INDEX_VALID, [schema_editor.quote_name(name)])
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def _build(schema_editor: Any, name: str, create: Any) -> None:
    """Build an index unless a valid one of that name exists; an invalid one is dropped first."""
    state = _validity(schema_editor, name)
    if state:
        return
    if state is False:
        _drop(schema_editor, name)
    create()


def _forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("saleor_crm_plugin", "InboxEvent")
    quote = schema_editor.quote_name
    table = quote(model._meta.db_table)
    for index in NEW_INDEXES:
        _build(
            schema_editor,
            index.name,
            lambda index=index: schema_editor.add_index(model, index, concurrently=True),
        )
    _build(
        schema_editor,
        BRIN_NAME,
        lambda: schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY {quote(BRIN_NAME)} ON {table} "
            f"USING brin ({quote('received_at')})"
        ),
    )
    for index in OLD_INDEXES:
        _drop(schema_editor, index.name)


def _drop(schema_editor: Any, name: str) -> None:
    if _validity(schema_editor, name) is not None:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


def _backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("saleor_crm_plugin", "InboxEvent")
    for index in OLD_INDEXES:
        _build(
            schema_editor,
            index.name,
            lambda index=index: schema_editor.add_index(model, index, concurrently=True),
        )
    for name in (*(index.name for index in NEW_INDEXES), BRIN_NAME):
        _drop(schema_editor, name)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("saleor_crm_plugin", "0015_inbox_drop_like_indexes"),
    ]

    operations = [
        migrations.RunPython(_forwards, _backwards),
        DatabaseWorkUnlessPostgreSQL(STATE_OPERATIONS),
    ]
