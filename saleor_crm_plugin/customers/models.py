"""The customer 360 projection: what later features (loyalty, RFM, recommendations) read.

Rows are built only from Saleor events and backfill. Every field remembers the version of the
snapshot it came from (``field_versions``); a snapshot replaces a field only if it knows the
field and is newer, which makes replays and out-of-order deliveries converge.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

AMOUNT = {"max_digits": 20, "decimal_places": 3}


class OrderStatus(models.TextChoices):
    DRAFT = "DRAFT"
    UNCONFIRMED = "UNCONFIRMED"
    UNFULFILLED = "UNFULFILLED"
    PARTIALLY_FULFILLED = "PARTIALLY_FULFILLED"
    PARTIALLY_RETURNED = "PARTIALLY_RETURNED"
    RETURNED = "RETURNED"
    FULFILLED = "FULFILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


# Orders that never turned into a sale: not counted in order count, spend or recency.
NON_SALE_STATUSES = (OrderStatus.DRAFT, OrderStatus.CANCELED, OrderStatus.EXPIRED)


class CustomerLink(models.IntegerChoices):
    NONE = 0
    EMAIL = 1  # guest or legacy payload: matched by e-mail
    USER_ID = 2  # the payload named the Saleor user


class CustomerQuerySet(models.QuerySet["Customer"]):
    def registered(self) -> CustomerQuerySet:
        return self.filter(saleor_user_id__isnull=False)

    def not_erased(self) -> CustomerQuerySet:
        return self.filter(erased_at__isnull=True)


CustomerManager = models.Manager.from_queryset(CustomerQuerySet)


class Customer(models.Model):
    """A shopper: a registered Saleor user, or a guest known only by e-mail."""

    saleor_user_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    email = models.CharField(max_length=254, blank=True, default="", db_index=True)
    first_name = models.CharField(max_length=256, blank=True, default="")
    last_name = models.CharField(max_length=256, blank=True, default="")
    is_active = models.BooleanField(null=True, blank=True)
    is_confirmed = models.BooleanField(null=True, blank=True)
    language_code = models.CharField(max_length=35, blank=True, default="")
    country_code = models.CharField(max_length=2, blank=True, default="")
    date_joined = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    saleor_updated_at = models.DateTimeField(null=True, blank=True)
    # Version of the snapshot each profile field came from (last-writer-wins per field).
    field_versions = models.JSONField(default=dict, blank=True)

    # Aggregates over all channels; per-channel figures live in CustomerChannelStats.
    order_count = models.PositiveIntegerField(default=0)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)

    # GDPR: customer_deleted blanks personal data; the row stays as an anonymous tombstone so
    # loyalty ledgers and statistics keep adding up, and late events cannot resurrect the data.
    erased_at = models.DateTimeField(null=True, blank=True)
    email_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CustomerManager()

    class Meta:
        ordering = ("pk",)
        constraints = [
            # One guest row per e-mail; registered customers are unique by Saleor user id.
            models.UniqueConstraint(
                fields=["email"],
                condition=models.Q(saleor_user_id__isnull=True, erased_at__isnull=True),
                name="crm_customer_guest_email_uniq",
            )
        ]

    def __str__(self) -> str:
        return self.email or self.saleor_user_id or f"customer {self.pk}"

    @property
    def is_guest(self) -> bool:
        return self.saleor_user_id is None

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class CustomerChannelStats(models.Model):
    """Lifetime figures per channel and currency, recomputed from the customer's orders."""

    # Indexed by ``crm_customer_channel_uniq``, which leads with it (migration 0017).
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="channel_stats", db_index=False
    )
    channel_id = models.CharField(max_length=255)
    channel_slug = models.CharField(max_length=255, blank=True, default="")
    currency = models.CharField(max_length=3)
    order_count = models.PositiveIntegerField(default=0)
    total_spent = models.DecimalField(**AMOUNT, default=Decimal(0))
    total_refunded = models.DecimalField(**AMOUNT, default=Decimal(0))
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "channel_id", "currency"], name="crm_customer_channel_uniq"
            )
        ]
        ordering = ("pk",)

    def __str__(self) -> str:
        return f"{self.customer_id} {self.channel_slug or self.channel_id} {self.currency}"


class Order(models.Model):
    saleor_order_id = models.CharField(max_length=255, unique=True)
    number = models.CharField(max_length=32, blank=True, default="")
    # Indexed by ``crm_order_customer_idx``, which leads with it (migration 0017).
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
        db_index=False,
    )
    customer_link = models.PositiveSmallIntegerField(
        choices=CustomerLink.choices, default=CustomerLink.NONE
    )
    saleor_user_id = models.CharField(max_length=255, blank=True, default="")
    # Not indexed: orders are linked to customers through the customer's e-mail, never
    # looked up by their own (migration 0017).
    user_email = models.CharField(max_length=254, blank=True, default="")
    channel_id = models.CharField(max_length=255)
    channel_slug = models.CharField(max_length=255, blank=True, default="")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32, choices=OrderStatus.choices)
    origin = models.CharField(max_length=32, blank=True, default="")
    voucher_code = models.CharField(max_length=255, blank=True, default="")
    total_gross = models.DecimalField(**AMOUNT, null=True, blank=True)
    total_net = models.DecimalField(**AMOUNT, null=True, blank=True)
    total_tax = models.DecimalField(**AMOUNT, null=True, blank=True)
    subtotal_gross = models.DecimalField(**AMOUNT, null=True, blank=True)
    shipping_gross = models.DecimalField(**AMOUNT, null=True, blank=True)
    # Payment group (absent from legacy payloads except where the event name implies it).
    charge_status = models.CharField(max_length=32, blank=True, default="")
    authorize_status = models.CharField(max_length=32, blank=True, default="")
    total_charged = models.DecimalField(**AMOUNT, default=Decimal(0))
    total_refunded = models.DecimalField(**AMOUNT, default=Decimal(0))
    total_granted_refund = models.DecimalField(**AMOUNT, null=True, blank=True)
    created_at = models.DateTimeField()
    saleor_updated_at = models.DateTimeField(null=True, blank=True)
    # Earliest time each milestone was seen; min-merged so delivery order does not matter.
    paid_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    # Version of the snapshot each scalar field came from (last-writer-wins per field), and
    # of the snapshot the line set / fulfilled / refunded quantities came from.
    field_versions = models.JSONField(default=dict, blank=True)
    lines_version = models.CharField(max_length=255, blank=True, default="")
    fulfilled_version = models.CharField(max_length=255, blank=True, default="")
    refunded_version = models.CharField(max_length=255, blank=True, default="")

    projected_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "created_at"], name="crm_order_customer_idx"),
            models.Index(fields=["channel_id", "created_at"], name="crm_order_channel_idx"),
        ]
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"order #{self.number}"

    @property
    def is_sale(self) -> bool:
        return self.status not in NON_SALE_STATUSES

    @property
    def net_paid(self) -> Decimal:
        """Money kept: Saleor's ``totalCharged`` already drops refunded amounts."""
        return self.total_charged


class OrderLine(models.Model):
    # Indexed by ``crm_orderline_uniq``, which leads with it (migration 0017).
    # db_constraint=False (migration 0018): PostgreSQL checked the foreign key by one query per
    # new line at commit, 13% of its CPU in a worker's drain; lines are written only by the
    # projection, for an order it has just locked or inserted in the same transaction, and
    # orders are deleted only through Django, whose collector deletes their lines first.
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", db_constraint=False, db_index=False
    )
    saleor_line_id = models.CharField(max_length=255)
    # Not indexed: nothing looks lines up by variant (migration 0017); ``product_id`` is.
    variant_id = models.CharField(max_length=255, blank=True, default="")
    product_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    product_slug = models.CharField(max_length=255, blank=True, default="")
    category_id = models.CharField(max_length=255, blank=True, default="")
    category_slug = models.CharField(max_length=255, blank=True, default="")
    product_type_id = models.CharField(max_length=255, blank=True, default="")
    product_type_slug = models.CharField(max_length=255, blank=True, default="")
    # Sorted "attribute-slug:value-slug" strings from Saleor (an item feature); [] = unknown.
    attributes = models.JSONField(default=list, blank=True)
    sku = models.CharField(max_length=255, blank=True, default="")
    product_name = models.CharField(max_length=386, blank=True, default="")
    variant_name = models.CharField(max_length=255, blank=True, default="")
    quantity = models.PositiveIntegerField()
    quantity_fulfilled = models.PositiveIntegerField(default=0)
    quantity_refunded = models.PositiveIntegerField(default=0)
    unit_price_gross = models.DecimalField(**AMOUNT)
    unit_price_net = models.DecimalField(**AMOUNT)
    total_price_gross = models.DecimalField(**AMOUNT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "saleor_line_id"], name="crm_orderline_uniq")
        ]
        ordering = ("pk",)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_name}"
