"""The inbox: accept fast, process later, lose nothing, never apply anything twice.

``store_event`` is all an adapter does in Saleor's request path: one INSERT guarded by the
unique dedupe key, then a Celery kick after commit. Workers claim pending rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` in batches, so any number of workers can drain the inbox
without coordination, and a broker outage only delays processing: the periodic sweep (and
``saleor-crm replay-inbox``) picks up whatever is still pending.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.privacy import email_hash
from saleor_crm_plugin.events.handlers import handle_event
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from saleor_crm_plugin.events.types import CrmEvent

logger = logging.getLogger(__name__)

KICK_CACHE_KEY = "saleor_crm_plugin:inbox-kick"
REDACTED_PAYLOAD = {"redacted": True}


def store_event(event: CrmEvent, *, kick: bool = True) -> InboxEvent | None:
    """Insert the event unless its dedupe key is known. Returns the new row, or ``None`` for a
    duplicate. Processing is enqueued after the surrounding transaction commits."""
    if not event.dedupe_key:
        raise ValueError("An event needs a dedupe key before it can be stored.")
    row = InboxEvent(
        dedupe_key=event.dedupe_key,
        kind=event.kind.value,
        source=event.source.value,
        saleor_api_url=event.saleor_api_url,
        object_id=event.object_id,
        issued_at=event.issued_at,
        payload=event.to_dict(),
        subject_user_id=event.subject_user_id or "",
        subject_email_hash=email_hash(event.subject_email),
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        return None
    if kick:
        transaction.on_commit(enqueue_processing)
    return row


def store_invalid(
    *, dedupe_key: str, kind: str, source: str, saleor_api_url: str, raw_body: str, error: str
) -> None:
    """Keep a signed but unreadable delivery for diagnosis instead of dropping it."""
    row = InboxEvent(
        dedupe_key=dedupe_key,
        kind=kind,
        source=source,
        saleor_api_url=saleor_api_url,
        raw_body=raw_body,
        status=InboxStatus.INVALID,
        last_error=error,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        pass


def enqueue_processing() -> None:
    """Ask a worker to drain the inbox. Broker trouble is logged, never raised: the rows are
    committed and the sweep will find them."""
    from saleor_crm_plugin.tasks.ingest import process_inbox_task

    coalesce = crm_settings.INBOX_KICK_COALESCE_SECONDS
    if coalesce > 0 and not cache.add(KICK_CACHE_KEY, 1, timeout=coalesce):
        return
    try:
        process_inbox_task.delay()
    except Exception:  # broad by design: Saleor's request must not fail because of us
        logger.warning("Could not enqueue inbox processing; the sweep will retry.", exc_info=True)


def process_pending(*, batch_size: int | None = None, max_events: int | None = None) -> int:
    """Drain pending events in batches; returns how many rows were handled (ok or failed)."""
    if crm_settings.INBOX_KICK_COALESCE_SECONDS > 0:
        # Rows committed after this point send a new kick, so none is left behind.
        cache.delete(KICK_CACHE_KEY)
    size = batch_size or crm_settings.INBOX_BATCH_SIZE
    total = 0
    while max_events is None or total < max_events:
        handled = _process_batch(size if max_events is None else min(size, max_events - total))
        if not handled:
            break
        total += handled
    return total


def _process_batch(size: int) -> int:
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            InboxEvent.objects.select_for_update(skip_locked=True)
            .filter(status=InboxStatus.PENDING, available_at__lte=now)
            .order_by("available_at", "id")[:size]
        )
        if not rows:
            return 0
        for row in rows:
            _process_row(row)
        InboxEvent.objects.bulk_update(
            rows,
            ["status", "attempts", "last_error", "processed_at", "available_at", "payload"],
        )
        _redact_erased(rows)
    return len(rows)


def _process_row(row: InboxEvent) -> None:
    row.attempts += 1
    try:
        if not row.payload.get("redacted"):
            with transaction.atomic():
                handle_event(CrmEvent.from_dict(row.payload))
    except Exception as exc:  # one bad event must not block the others
        logger.exception("Processing inbox event %s (%s) failed", row.pk, row.kind)
        row.last_error = "".join(traceback.format_exception_only(exc)).strip()[:2000]
        if row.attempts >= crm_settings.INBOX_MAX_ATTEMPTS:
            row.status = InboxStatus.FAILED
        else:
            row.available_at = timezone.now() + timedelta(seconds=min(2**row.attempts * 5, 3600))
        return
    row.status = InboxStatus.DONE
    row.last_error = ""
    row.processed_at = timezone.now()


def _redact_erased(rows: list[InboxEvent]) -> None:
    from saleor_crm_plugin.customers.models import Customer

    user_ids = {r.subject_user_id for r in rows if r.subject_user_id}
    hashes = {r.subject_email_hash for r in rows if r.subject_email_hash}
    if not user_ids and not hashes:
        return
    erased = Customer.objects.filter(erased_at__isnull=False).filter(
        Q(saleor_user_id__in=user_ids) | Q(email_hash__in=hashes)
    )
    for user_id, hashed in erased.values_list("saleor_user_id", "email_hash"):
        redact_for_subject(user_id=user_id or "", email_hash=hashed)


def redact_for_subject(*, user_id: str, email_hash: str) -> int:
    """Drop stored payloads about an erased customer (GDPR); dedupe keys stay, so a retried
    delivery is still recognised as a duplicate."""
    condition = Q(pk__in=[])
    if user_id:
        condition |= Q(subject_user_id=user_id)
    if email_hash:
        condition |= Q(subject_email_hash=email_hash)
    return (
        InboxEvent.objects.filter(condition)
        .exclude(status=InboxStatus.PENDING)
        .update(payload=REDACTED_PAYLOAD, raw_body="")
    )


def sweep(*, older_than_seconds: int | None = None) -> int:
    """Re-enqueue stranded pending events (broker was down, worker died). Returns their count."""
    age = (
        crm_settings.INBOX_SWEEP_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    )
    cutoff = timezone.now() - timedelta(seconds=age)
    stranded = InboxEvent.objects.filter(
        status=InboxStatus.PENDING, received_at__lte=cutoff, available_at__lte=timezone.now()
    ).count()
    if stranded:
        enqueue_processing()
    return stranded


def requeue_failed() -> int:
    """Give failed events another round (after a fix was deployed)."""
    return InboxEvent.objects.filter(status=InboxStatus.FAILED).update(
        status=InboxStatus.PENDING, attempts=0, available_at=timezone.now()
    )


def prune(*, retention_days: int | None = None) -> int:
    """Delete processed rows past retention; their dedupe protection ends with them, which is
    fine because Saleor stops retrying after minutes."""
    days = crm_settings.INBOX_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = InboxEvent.objects.filter(
        status__in=[InboxStatus.DONE, InboxStatus.INVALID], received_at__lt=cutoff
    ).delete()
    return deleted
