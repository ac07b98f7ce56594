"""Mirror CRM facts into Saleor private metadata, batched and rate-limited.

Domains call ``queue_private_metadata`` inside their own transaction; nothing talks to Saleor
there. A periodic Celery task (``flush``) sends what is pending, one ``updatePrivateMetadata``
per object at a bounded rate, so a nightly recompute over a million customers becomes a steady
trickle Saleor can absorb, and values that did not change are not sent at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.bulk import (
    any_of,
    array_param,
    execute_many,
    insert_ignoring_conflicts,
    json_value_text,
    server_bound_cursor,
)
from saleor_crm_plugin.core.rows import RowReader
from saleor_crm_plugin.core.saleor_api import SaleorApiError, SaleorClient, saleor_document
from saleor_crm_plugin.writeback.models import MetadataWriteback

logger = logging.getLogger(__name__)

UPDATE_PRIVATE_METADATA = saleor_document(
    "CrmUpdatePrivateMetadata",
    """
mutation CrmUpdatePrivateMetadata($id: ID!, $input: [MetadataInput!]!) {
  updatePrivateMetadata(id: $id, input: $input) {
    errors { field code message }
  }
}
""",
)

# Saleor error codes after which retrying cannot help (the object is gone or not ours).
PERMANENT_ERROR_CODES = frozenset({"NOT_FOUND", "INVALID", "GRAPHQL_ERROR"})
CLAIM_SECONDS = 300


def queue_private_metadata(object_id: str, items: Mapping[str, str]) -> None:
    """Ask for ``items`` to be written to the Saleor object's private metadata.

    Call inside the transaction that changed the fact, so the write-back commits (or rolls
    back) with it. Values must be strings (Saleor's metadata values are strings)."""
    if not object_id or not items:
        return
    clean = {str(k): str(v) for k, v in items.items()}
    for _ in range(3):
        with transaction.atomic():
            row = MetadataWriteback.objects.select_for_update().filter(object_id=object_id).first()
            if row is None:
                try:
                    with transaction.atomic():
                        MetadataWriteback.objects.create(object_id=object_id, items=clean)
                    return
                except IntegrityError:
                    continue
            merged = {**row.items, **clean}
            if merged == row.items and (row.pending or row.sent_at is not None):
                return  # nothing new: already sent or already waiting to be sent
            MetadataWriteback.objects.filter(pk=row.pk).update(
                items=merged, version=F("version") + 1, pending=True, attempts=0, last_error=""
            )
            return


def queue_private_metadata_many(items_by_object: Mapping[str, Mapping[str, str]]) -> None:
    """``queue_private_metadata`` for many objects in a constant number of queries (bulk
    recomputes and replays). Same semantics: merged into any pending values, unchanged values
    are not queued again. Rows are locked in id order, so concurrent callers cannot deadlock."""
    wanted = {
        object_id: {str(k): str(v) for k, v in items.items()}
        for object_id, items in items_by_object.items()
        if object_id and items
    }
    if not wanted:
        return
    with transaction.atomic(savepoint=False):
        # Every inbox batch asks this for a few hundred customers: one array parameter and a
        # hand-written read of the four columns used, not an ORM ``IN`` list (a placeholder,
        # a conversion and the quoting per value) and whole rows.
        where, params = any_of("t.object_id", list(wanted), "text")
        existing = {
            row.object_id: row
            for row in _ROWS.fetch(
                where, params, order_by="t.object_id", only=_READ, for_update=True
            )
        }
        new_rows = [
            MetadataWriteback(object_id=object_id, items=items)
            for object_id, items in wanted.items()
            if object_id not in existing
        ]
        if new_rows:
            # One ``INSERT ... SELECT * FROM unnest(...) ON CONFLICT DO NOTHING`` with the
            # items as ``jsonb[]``: ``bulk_create`` made psycopg dump a list of ``Jsonb``
            # wrappers value by value in Python.
            insert_ignoring_conflicts(MetadataWriteback, new_rows)
        changed = []
        for object_id, row in existing.items():
            merged = {**row.items, **wanted[object_id]}
            if merged == row.items and (row.pending or row.sent_at is not None):
                continue
            changed.append((merged, row.pk))
        if changed:
            _requeue(changed)


_ROWS = RowReader(MetadataWriteback)
_READ = frozenset({"object_id", "items", "pending", "sent_at"})


def _requeue(changed: list[tuple[dict[str, str], int]]) -> None:
    """Mark rows pending again with merged items (each row once: ``changed`` comes from a
    dict by object id). On PostgreSQL one ``UPDATE ... FROM unnest(jsonb[], bigint[])`` for
    all of them: the statement per row (``executemany``) cost psycopg a bind, a ``Jsonb``
    dump and a result per row, ~130 rows per inbox batch (``bulk_update`` with
    ``F("version") + 1`` before that resolved an expression per row). Elsewhere one prepared
    statement per row."""
    meta = MetadataWriteback._meta
    quote = connection.ops.quote_name
    items = meta.get_field("items")
    col = {name: quote(meta.get_field(name).column) for name in ("version", "pending")}
    assignments = (
        f"{col['version']} = {col['version']} + 1, {col['pending']} = %s, "
        f"{quote(meta.get_field('attempts').column)} = 0, "
        f"{quote(meta.get_field('last_error').column)} = ''"
    )
    if connection.vendor == "postgresql":
        texts = [json_value_text(merged, items) for merged, _ in changed]
        sql = (
            f"UPDATE {quote(meta.db_table)} AS t SET {quote(items.column)} = v.items, "
            f"{assignments} FROM unnest(%s::jsonb[], %s::bigint[]) AS v(items, pk) "
            f"WHERE t.{quote(meta.pk.column)} = v.pk"
        )
        with server_bound_cursor() as cursor:
            cursor.execute(sql, [True, array_param(texts), array_param([pk for _, pk in changed])])
        return
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote(items.column)} = %s, {assignments} "
        f"WHERE {quote(meta.pk.column)} = %s"
    )
    prepare = items.get_db_prep_save
    execute_many(sql, [[prepare(merged, connection), True, pk] for merged, pk in changed])


@dataclass
class FlushResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    configured: bool = True


class _RateLimiter:
    def __init__(
        self,
        per_second: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_at = 0.0
        self.sleep = sleep
        self.clock = clock

    def wait(self) -> None:
        now = self.clock()
        if now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


def _claim(batch: int) -> list[MetadataWriteback]:
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            MetadataWriteback.objects.select_for_update(skip_locked=True)
            .filter(pending=True)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("updated_at", "pk")[:batch]
        )
        if rows:
            MetadataWriteback.objects.filter(pk__in=[r.pk for r in rows]).update(
                claimed_until=now + timedelta(seconds=CLAIM_SECONDS)
            )
    return rows


def flush(
    *,
    client: SaleorClient | None = None,
    max_seconds: float | None = None,
    batch: int = 50,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> FlushResult:
    """Send pending metadata until none is left or the time budget is spent."""
    from saleor_crm_plugin.core.saleor_target import get_saleor_client

    client = client or get_saleor_client()
    if client is None:
        logger.info("Metadata write-back is not configured; %s objects wait.", pending_count())
        return FlushResult(configured=False)
    budget = crm_settings.WRITEBACK_MAX_SECONDS_PER_RUN if max_seconds is None else max_seconds
    deadline = time.monotonic() + budget
    limiter = _RateLimiter(crm_settings.WRITEBACK_RATE_PER_SECOND, sleep, clock)
    result = FlushResult()
    while time.monotonic() < deadline:
        rows = _claim(batch)
        if not rows:
            break
        for index, row in enumerate(rows):
            if time.monotonic() >= deadline:
                MetadataWriteback.objects.filter(pk__in=[r.pk for r in rows[index:]]).update(
                    claimed_until=None
                )
                return result
            limiter.wait()
            _send(client, row, result)
    return result


def _send(client: SaleorClient, row: MetadataWriteback, result: FlushResult) -> None:
    variables = {
        "id": row.object_id,
        "input": [{"key": k, "value": v} for k, v in sorted(row.items.items())],
    }
    try:
        data = client.execute(UPDATE_PRIVATE_METADATA, variables)
        errors = (data.get("updatePrivateMetadata") or {}).get("errors") or []
    except SaleorApiError as exc:
        permanent = bool(exc.errors) and exc.status is None
        _record_failure(row, str(exc), permanent=permanent, result=result)
        return
    if errors:
        codes = {e.get("code") for e in errors}
        message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        _record_failure(row, message, permanent=bool(codes & PERMANENT_ERROR_CODES), result=result)
        return
    updated = MetadataWriteback.objects.filter(pk=row.pk, version=row.version).update(
        pending=False, claimed_until=None, sent_at=timezone.now(), attempts=0, last_error=""
    )
    if not updated:  # changed while in flight: stays pending with the newer values
        MetadataWriteback.objects.filter(pk=row.pk).update(claimed_until=None)
    result.sent += 1


def _record_failure(
    row: MetadataWriteback, message: str, *, permanent: bool, result: FlushResult
) -> None:
    attempts = row.attempts + 1
    if permanent or attempts >= crm_settings.WRITEBACK_MAX_ATTEMPTS:
        logger.warning("Giving up metadata write-back for %s: %s", row.object_id, message)
        MetadataWriteback.objects.filter(pk=row.pk, version=row.version).update(
            pending=False, claimed_until=None, attempts=attempts, last_error=message[:2000]
        )
        MetadataWriteback.objects.filter(pk=row.pk).update(claimed_until=None)
        result.failed += 1
        return
    backoff = timedelta(seconds=min(30 * 2**attempts, 3600))
    MetadataWriteback.objects.filter(pk=row.pk).update(
        claimed_until=timezone.now() + backoff, attempts=attempts, last_error=message[:2000]
    )
    result.retried += 1


def pending_count() -> int:
    return MetadataWriteback.objects.filter(pending=True).count()
