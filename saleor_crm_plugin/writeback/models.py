from __future__ import annotations

from django.db import models


class MetadataWriteback(models.Model):
    """Private metadata we want on a Saleor object (``crm.tier``, ``crm.rfm_segment``, ...).

    One row per Saleor object: repeated updates coalesce into it, and only the latest values
    are sent. ``pending`` is cleared only if nothing changed while the request was in flight
    (``version``), so a concurrent update is never lost.
    """

    object_id = models.CharField(max_length=255, unique=True)
    items = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    pending = models.BooleanField(default=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["updated_at"],
                name="crm_writeback_pending_idx",
                condition=models.Q(pending=True),
            )
        ]

    def __str__(self) -> str:
        return f"metadata of {self.object_id}"
