from __future__ import annotations

from django.db import models
from django.utils import timezone


class InboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"  # gave up after CRM_INBOX_MAX_ATTEMPTS; replay-inbox --failed
    INVALID = "invalid", "Invalid"  # signed but unreadable; raw body kept for diagnosis


class InboxEvent(models.Model):
    """Every Saleor event we accepted, before and after processing.

    The unique ``dedupe_key`` is what makes webhook retries and repeated hooks harmless: a second
    insert of the same delivery is a no-op. Rows stay ``pending`` until a worker has applied
    them, so a crash or a broker outage loses nothing: the sweep re-enqueues them.
    """

    # Unique through ``Meta.constraints``, not ``unique=True``: on PostgreSQL the field
    # options also create a ``varchar_pattern_ops`` copy of the index for ``LIKE``, which
    # nothing runs and every insert paid for (migration 0015). The same for the subject columns.
    dedupe_key = models.CharField(max_length=128)
    kind = models.CharField(max_length=40)
    source = models.CharField(max_length=20)
    saleor_api_url = models.CharField(max_length=255, blank=True, default="")
    object_id = models.CharField(max_length=255, blank=True, default="")
    issued_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    raw_body = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=16, choices=InboxStatus.choices, default=InboxStatus.PENDING
    )
    # Not a ``PositiveIntegerField``: its ``CHECK (attempts >= 0)`` was prepared and evaluated
    # by every insert and outcome update, and only this app writes the column (0, +1 per
    # claim, 0 again on requeue), which can never make it negative (migration 0019).
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)
    # Failed attempts back off: the row is not claimed again before this time.
    available_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Who the payload is about, so a GDPR erasure can find and redact it.
    subject_user_id = models.CharField(max_length=255, blank=True, default="")
    subject_email_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        # ``ON CONFLICT (dedupe_key)`` of the inserts needs this unique index.
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="crm_inbox_dedupe_key_uniq")
        ]
        indexes = [
            models.Index(
                fields=["available_at", "id"],
                name="crm_inbox_pending_idx",
                condition=models.Q(status="pending"),
            ),
            # Every other index here gets an entry per inserted row and again per update
            # (a status change is never a HOT update: ``status`` is in the pending index's
            # predicate), so those that serve rare queries hold only the rows they look for
            # (migration 0016). ``requeue_failed`` and ``replay-inbox`` look for failed rows,
            # ``prune`` for invalid ones (and for done ones through a BRIN index on
            # ``received_at`` that migration 0016 adds on PostgreSQL only, outside the model:
            # an insert into an unsummarised BRIN range writes nothing).
            models.Index(
                fields=["status", "received_at"],
                name="crm_inbox_unresolved_idx",
                condition=models.Q(status__in=["failed", "invalid"]),
            ),
            # GDPR erasure finds the rows about a subject (``redact_for_subject``), never by
            # an empty value: raw webhook rows are inserted with both columns empty (the
            # worker fills them), and a guest's order has no user id.
            models.Index(
                fields=["subject_user_id"],
                name="crm_inbox_subj_user_set_idx",
                condition=~models.Q(subject_user_id=""),
            ),
            models.Index(
                fields=["subject_email_hash"],
                name="crm_inbox_subj_email_set_idx",
                condition=~models.Q(subject_email_hash=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} ({self.status})"


class BackfillProgress(models.Model):
    """Where ``saleor-crm backfill`` stopped, per Saleor instance and resource, so an
    interrupted import resumes from the last stored page instead of starting over."""

    saleor_api_url = models.CharField(max_length=255)
    resource = models.CharField(max_length=32)
    cursor = models.TextField(blank=True, default="")
    processed = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["saleor_api_url", "resource"], name="crm_backfill_progress_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource} from {self.saleor_api_url}: {self.processed}"
