"""Recommendation state: model runs with their artefacts, precomputed lists, merchant rules
and storefront signals.

Artefacts are raw float32 arrays (``numpy.ndarray.tobytes``) plus their shapes, never pickles:
loading them cannot execute code, they survive library upgrades, and a web worker maps them
into memory with one ``numpy.frombuffer`` each.
"""

from __future__ import annotations

from django.db import models

from saleor_crm_plugin.customers.models import Customer


class RunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunDecision(models.TextChoices):
    PENDING = "pending"
    PROMOTED = "promoted"  # the model serves personalised recommendations
    FALLBACK = "fallback"  # did not beat the baselines by the margin: popularity serves
    INSUFFICIENT_DATA = "insufficient_data"


class ModelRunQuerySet(models.QuerySet["ModelRun"]):
    def serving(self) -> ModelRunQuerySet:
        return self.filter(is_active=True)


ModelRunManager = models.Manager.from_queryset(ModelRunQuerySet)


class ModelRun(models.Model):
    """One training run: what it was trained on, how it scored against the baselines and
    whether it was promoted. At most one run is active (serving) at a time."""

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    decision = models.CharField(
        max_length=32, choices=RunDecision.choices, default=RunDecision.PENDING
    )
    is_active = models.BooleanField(default=False)
    trigger = models.CharField(max_length=32, blank=True, default="")
    algorithm = models.CharField(max_length=32, default="lightfm-warp")
    params = models.JSONField(default=dict, blank=True)
    # Data sizes: customers, products, interactions and item features of the full matrix.
    n_users = models.PositiveIntegerField(default=0)
    n_items = models.PositiveIntegerField(default=0)
    n_interactions = models.PositiveIntegerField(default=0)
    n_item_features = models.PositiveIntegerField(default=0)
    # User-feature columns after the per-customer identity (channels, countries); 0 = none.
    n_user_features = models.PositiveIntegerField(default=0)
    n_test_users = models.PositiveIntegerField(default=0)
    # Storefront events that joined the fit (0 when ``CRM_RECS_EVENT_WEIGHTS`` is off).
    n_events = models.PositiveIntegerField(default=0)
    # Orders paid up to this instant were in the data (drives "retrain after N new orders").
    data_until = models.DateTimeField(null=True, blank=True)
    paid_orders_seen = models.PositiveIntegerField(default=0)
    # {"model": {...}, "popularity": {...}, "buy_again": {...}}: precision/recall/ndcg/map@10.
    metrics = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    duration_seconds = models.FloatField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ModelRunManager()

    class Meta:
        ordering = ("-started_at", "-pk")
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="crm_recs_one_active_run",
            )
        ]

    def __str__(self) -> str:
        return f"model run {self.pk} ({self.decision})"


class ModelArtefact(models.Model):
    """The promoted model's float32 representations, with the id maps that index them.

    ``user_ids`` are CRM customer pks, ``item_ids`` Saleor product ids, in matrix order.
    Item representations already include the feature (category) embeddings, and user
    representations the user-feature (channel, country) embeddings, so serving needs no
    LightFM import at all: score = user_factors @ item_factors.T + item_biases.
    """

    run = models.OneToOneField(ModelRun, on_delete=models.CASCADE, related_name="artefact")
    user_ids = models.JSONField(default=list)
    item_ids = models.JSONField(default=list)
    components = models.PositiveIntegerField()
    user_factors = models.BinaryField()
    user_biases = models.BinaryField()
    item_factors = models.BinaryField()
    item_biases = models.BinaryField()
    # Recency-weighted purchase history (CSR: int32 indptr/indices, float32 data) for the
    # repeat-purchase term and the "already purchased" filter without touching order tables.
    history_indptr = models.BinaryField()
    history_indices = models.BinaryField()
    history_data = models.BinaryField()
    repeat_weight = models.FloatField(default=0.0)
    # User-feature columns ("channel:<id>", "country:<code>") with their float32 embeddings
    # (len x components) and biases, so a customer the model never saw can be scored from
    # their channel and country; empty when the run had no user features.
    user_feature_names = models.JSONField(default=list, blank=True)
    user_feature_factors = models.BinaryField(default=b"", blank=True)
    user_feature_biases = models.BinaryField(default=b"", blank=True)
    # Country centroids for a new customer without purchases when the run has no user
    # features: the mean float32 ``user_factors`` (len x components) of the trained customers
    # of each country, with how many customers each mean is over (serving applies
    # ``CRM_RECS_COUNTRY_CENTROID_MIN_CUSTOMERS``, so changing it needs no retraining).
    # Computed at training time from the countries the fit saw; empty for older runs.
    centroid_countries = models.JSONField(default=list, blank=True)
    centroid_customers = models.JSONField(default=list, blank=True)
    centroid_factors = models.BinaryField(default=b"", blank=True)

    def __str__(self) -> str:
        return f"artefact of run {self.run_id}"


class PrecomputedRecommendation(models.Model):
    """Top candidates per active customer, ranked by the promoted run (before filters, which
    are applied when served so a blocklist or stock change takes effect at once)."""

    # Indexed by ``crm_recs_precomputed_uniq``, which leads with it (migration 0017).
    run = models.ForeignKey(
        ModelRun, on_delete=models.CASCADE, related_name="precomputed", db_index=False
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    product_ids = models.JSONField(default=list)
    scores = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "customer"], name="crm_recs_precomputed_uniq")
        ]

    def __str__(self) -> str:
        return f"top-{len(self.product_ids)} for {self.customer_id}"


class RankingKind(models.TextChoices):
    POPULAR = "popular"  # all-time, recency-weighted purchases
    TRENDING = "trending"  # growth of the last window over the one before


class ChannelRanking(models.Model):
    """Popular / trending products per channel: what anonymous and new customers see, and
    the fallback when no model is promoted. ``channel_id`` "" is across all channels."""

    channel_id = models.CharField(max_length=255, blank=True, default="")
    kind = models.CharField(max_length=16, choices=RankingKind.choices)
    product_ids = models.JSONField(default=list)
    scores = models.JSONField(default=list)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel_id", "kind"], name="crm_recs_ranking_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.kind} in {self.channel_id or 'all channels'}"


class ProductAssociation(models.Model):
    """ "Frequently bought together": products in the same paid order, with the usual
    association-rule measures (support = orders with both, confidence = P(other | product),
    lift = confidence / P(other))."""

    product_id = models.CharField(max_length=255)
    other_product_id = models.CharField(max_length=255)
    support = models.PositiveIntegerField()
    confidence = models.FloatField()
    lift = models.FloatField()
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product_id", "other_product_id"], name="crm_recs_association_uniq"
            )
        ]
        indexes = [models.Index(fields=["product_id", "-lift"], name="crm_recs_assoc_idx")]

    def __str__(self) -> str:
        return f"{self.product_id} -> {self.other_product_id}"


class ProductRule(models.Model):
    """Merchant controls per product: never recommend (blocklist) or boost (score multiplier,
    1.0 = neutral)."""

    product_id = models.CharField(max_length=255, unique=True)
    blocked = models.BooleanField(default=False)
    boost = models.FloatField(default=1.0)
    note = models.CharField(max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rule for {self.product_id}"


class ProductAvailability(models.Model):
    """Whether a product can be bought in a channel, kept in sync from product events or a
    catalogue sync. Products without a row are assumed available (we only learn about
    products from orders)."""

    product_id = models.CharField(max_length=255)
    channel_id = models.CharField(max_length=255)
    is_available = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product_id", "channel_id"], name="crm_recs_availability_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.product_id} in {self.channel_id}: {self.is_available}"


class StorefrontEventKind(models.TextChoices):
    PRODUCT_VIEWED = "product_viewed"
    ADDED_TO_CART = "added_to_cart"
    RECOMMENDATION_SHOWN = "recommendation_shown"
    RECOMMENDATION_CLICKED = "recommendation_clicked"


class StorefrontEvent(models.Model):
    """A storefront signal (view, add to cart, recommendation shown/clicked), for optional
    training signal, click-through rates and customer-journey analysis.

    ``client_event_id`` makes retried beacons idempotent; clicks carry the placement and the
    run that produced the recommendation so revenue can be attributed to both."""

    kind = models.CharField(max_length=32, choices=StorefrontEventKind.choices)
    client_event_id = models.CharField(max_length=64, blank=True, default="")
    # Indexed by ``crm_recs_event_cust_idx``, which leads with it (migration 0017).
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    anonymous_id = models.CharField(max_length=64, blank=True, default="")
    channel_id = models.CharField(max_length=255, blank=True, default="")
    product_id = models.CharField(max_length=255)
    placement = models.CharField(max_length=64, blank=True, default="")
    run = models.ForeignKey(
        ModelRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client_event_id"],
                condition=~models.Q(client_event_id=""),
                name="crm_recs_event_client_id_uniq",
            )
        ]
        indexes = [
            models.Index(fields=["kind", "occurred_at"], name="crm_recs_event_kind_idx"),
            models.Index(fields=["customer", "product_id"], name="crm_recs_event_cust_idx"),
        ]
        ordering = ("-occurred_at", "-pk")

    def __str__(self) -> str:
        return f"{self.kind} {self.product_id}"
