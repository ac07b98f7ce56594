"""RFM state: one current row per customer and channel, the runs that scored them, the
segment history between runs, and the per-channel segment map.

Recency in days is not stored on the customer row: it changes every day for everybody, and a
stored copy would force a million-row rewrite per nightly run. It is derived from
``last_paid_at`` and the run's ``as_of`` wherever it is shown.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from saleor_crm_plugin.customers.models import AMOUNT, Customer


class RfmRunKind(models.TextChoices):
    FULL = "full"
    INCREMENTAL = "incremental"


class RfmRun(models.Model):
    """One scoring of one channel. Cut points are kept so every score can be explained."""

    channel_id = models.CharField(max_length=255)
    channel_slug = models.CharField(max_length=255, blank=True, default="")
    currency = models.CharField(max_length=3, blank=True, default="")
    kind = models.CharField(max_length=16, choices=RfmRunKind.choices)
    as_of = models.DateTimeField()
    # None = lifetime frequency/monetary.
    frequency_window_days = models.PositiveIntegerField(null=True, blank=True)
    # Upper bounds of scores 1..4 (``percentile_disc`` at 20/40/60/80 %); see services.score.
    recency_cuts = models.JSONField(default=list)
    frequency_cuts = models.JSONField(default=list)
    monetary_cuts = models.JSONField(default=list)
    # The segment map the run used, {"r,f": slug}, and the display names, [[slug, name]].
    segment_cells = models.JSONField(default=dict)
    segment_names = models.JSONField(default=list)
    customer_count = models.PositiveIntegerField(default=0)
    recomputed_count = models.PositiveIntegerField(default=0)
    changed_count = models.PositiveIntegerField(default=0)
    moved_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-pk",)
        indexes = [models.Index(fields=["channel_id", "-id"], name="crm_rfmrun_channel_idx")]

    def __str__(self) -> str:
        return f"RFM run {self.pk} of {self.channel_slug or self.channel_id}"


class CustomerRfm(models.Model):
    """The customer's current raw metrics and scores in one channel."""

    # db_constraint=False: a full run inserts up to a row per customer, and a per-row FK
    # trigger roughly doubles that cost; deletes still cascade (Django's collector does it).
    # Indexed by ``crm_customerrfm_uniq``, which leads with it (migration 0017).
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="rfm", db_constraint=False, db_index=False
    )
    channel_id = models.CharField(max_length=255)
    channel_slug = models.CharField(max_length=255, blank=True, default="")
    currency = models.CharField(max_length=3, blank=True, default="")
    last_paid_at = models.DateTimeField()
    frequency = models.PositiveIntegerField(default=0)
    monetary = models.DecimalField(**AMOUNT, default=Decimal(0))
    r_score = models.PositiveSmallIntegerField(default=0)
    f_score = models.PositiveSmallIntegerField(default=0)
    m_score = models.PositiveSmallIntegerField(default=0)
    segment = models.CharField(max_length=64, blank=True, default="", db_index=False)
    # Customer.order_count when the metrics were computed: a change means orders moved to or
    # from this customer without the order rows being re-saved (guest merges), see services.
    customer_order_count = models.PositiveIntegerField(default=0)
    # Last run that changed this row's scores or segment (drives the batched write-back).
    changed_run_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel_id"], name="crm_customerrfm_uniq")
        ]
        indexes = [
            # a segment's customers, biggest spenders first (the list and export order)
            models.Index(
                fields=["channel_id", "segment", "-monetary", "id"],
                name="crm_customerrfm_segment_idx",
            )
        ]
        ordering = ("pk",)

    def __str__(self) -> str:
        return f"{self.customer_id} {self.channel_slug}: {self.segment}"

    @property
    def scores(self) -> str:
        return f"R{self.r_score}F{self.f_score}M{self.m_score}"


class RfmSegmentHistory(models.Model):
    """A customer's segment from one run (``from_run``) until the run that changed it
    (``to_run``, exclusive; None = still current). One row per change, not per run, so a
    nightly run over a million customers adds rows only for those who moved."""

    # No database FK constraints (see CustomerRfm.customer); Django still cascades deletes.
    # Indexed by ``crm_rfmhist_customer_idx``, which leads with it (migration 0017).
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="rfm_history",
        db_constraint=False,
        db_index=False,
    )
    channel_id = models.CharField(max_length=255)
    segment = models.CharField(max_length=64)
    from_run = models.ForeignKey(
        RfmRun, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    to_run = models.ForeignKey(
        RfmRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        indexes = [
            models.Index(fields=["customer", "channel_id"], name="crm_rfmhist_customer_idx"),
            models.Index(fields=["channel_id", "from_run"], name="crm_rfmhist_from_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "channel_id"],
                condition=models.Q(to_run__isnull=True),
                name="crm_rfmhist_one_open_uniq",
            )
        ]
        ordering = ("pk",)

    def __str__(self) -> str:
        return f"{self.customer_id} {self.segment} from run {self.from_run_id}"


class RfmSegmentMap(models.Model):
    """A channel's own R x F -> segment map (the default map applies when there is none)."""

    channel_id = models.CharField(max_length=255, unique=True)
    cells = models.JSONField(default=dict)  # {"r,f": slug}, all 25 cells
    names = models.JSONField(default=list)  # [[slug, display name]], in display order
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"RFM segment map of {self.channel_id}"
