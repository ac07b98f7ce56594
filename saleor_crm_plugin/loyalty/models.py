"""Loyalty ledger tables.

The ledger (``LedgerEntry``) is append-only: a balance is the sum of its entries, never a number
that code overwrites. Each credit is a ``PointLot`` with its own expiry, so redemptions can
consume the lots that expire first and a refund can reverse exactly the points of that order.
``LoyaltyAccount.balance``/``pending`` are caches of the sums, kept in the same transaction and
checked by ``saleor-crm loyalty-audit``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone

from saleor_crm_plugin.customers.models import AMOUNT, Customer


class EntryKind(models.TextChoices):
    EARN = "earn"  # points credited straight to the balance
    PENDING = "pending"  # order points waiting for the return window
    CONFIRM = "confirm"  # pending points become spendable
    REDEEM = "redeem"  # points turned into a gift card (reserved first)
    RELEASE = "release"  # a reservation given back because Saleor refused the gift card
    REVERSE = "reverse"  # refund or cancellation of the order that earned them
    EXPIRE = "expire"
    ADJUST = "adjust"  # staff correction, clawback write-off
    BONUS = "bonus"  # signup, first order, birthday, review, referral, staff bonus


class EntrySource(models.TextChoices):
    ORDER = "order"
    SIGNUP = "signup"
    FIRST_ORDER = "first_order"
    BIRTHDAY = "birthday"
    REVIEW = "review"
    REFERRAL = "referral"
    STAFF = "staff"
    REDEMPTION = "redemption"
    SYSTEM = "system"


class LotStatus(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    SPENT = "spent"
    EXPIRED = "expired"
    REVERSED = "reversed"


class NegativeBalancePolicy(models.TextChoices):
    NEGATIVE = "negative"  # the account owes the points; later earnings pay the debt first
    CLAWBACK = "clawback"  # take them from other lots; what cannot be taken is written off


class LoyaltyAccount(models.Model):
    """One customer's points in one channel (channels can have different currencies/rules)."""

    # Indexed by ``crm_loyalty_account_uniq``, which leads with it (migration 0017).
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="loyalty_accounts", db_index=False
    )
    channel_id = models.CharField(max_length=255)
    channel_slug = models.CharField(max_length=255, blank=True, default="")
    currency = models.CharField(max_length=3, blank=True, default="")
    # Caches of the ledger sums (points / pending_points), updated with every entry.
    balance = models.BigIntegerField(default=0)
    pending = models.BigIntegerField(default=0)
    # Points reversed after they had been spent and not yet covered by newer lots.
    debt = models.BigIntegerField(default=0)
    lifetime_earned = models.BigIntegerField(default=0)
    lifetime_redeemed = models.BigIntegerField(default=0)
    tier = models.CharField(max_length=64, blank=True, default="")
    tier_since = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("pk",)
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "channel_id"], name="crm_loyalty_account_uniq"
            ),
            models.CheckConstraint(condition=models.Q(debt__gte=0), name="crm_loyalty_debt_gte0"),
        ]
        indexes = [models.Index(fields=["channel_id", "tier"], name="crm_loyalty_acct_tier_idx")]

    def __str__(self) -> str:
        return f"loyalty {self.customer_id} {self.channel_slug or self.channel_id}"


class PointLot(models.Model):
    """One credit of points and what is left of it.

    Lots change state (pending -> active -> spent/expired/reversed); every change is explained by
    a ledger entry. ``order_id`` ties order points (and the first-order bonus) to the order, so
    its refunds and return window apply to them."""

    # Indexed by ``crm_lot_account_idx``, which leads with it (migration 0017).
    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="lots", db_index=False
    )
    key = models.CharField(max_length=255, unique=True)
    source = models.CharField(max_length=32, choices=EntrySource.choices)
    source_id = models.CharField(max_length=255, blank=True, default="")
    order_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    # Order points are reversed in proportion to the refund; a bonus only on a full reversal.
    proportional = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=LotStatus.choices)
    points = models.BigIntegerField()  # credited (while pending it follows the order)
    base_points = models.BigIntegerField(default=0)  # before the tier multiplier
    multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal(1))
    reversed_points = models.BigIntegerField(default=0)
    remaining = models.BigIntegerField(default=0)  # spendable, once active
    revision = models.PositiveIntegerField(default=0)  # entries posted for the lot so far
    earned_at = models.DateTimeField()
    confirm_after = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("pk",)
        indexes = [
            models.Index(fields=["account", "status", "expires_at"], name="crm_lot_account_idx"),
            models.Index(
                fields=["confirm_after"],
                name="crm_lot_confirm_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(
                fields=["expires_at"],
                name="crm_lot_expiry_idx",
                condition=models.Q(status="active"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(remaining__gte=0), name="crm_lot_remaining_gte0"
            )
        ]

    def __str__(self) -> str:
        return f"lot {self.key} ({self.status})"

    @property
    def open_points(self) -> int:
        """Points of the lot not reversed (pending or confirmed)."""
        return self.points - self.reversed_points


class LedgerEntry(models.Model):
    """An immutable line of the ledger. ``points`` moves the spendable balance, ``pending_points``
    the pending one; a confirmation moves points from one to the other in one entry."""

    # Indexed by ``crm_ledger_account_sum_idx`` and ``crm_ledger_history_idx``, which lead
    # with it (migration 0017).
    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    lot = models.ForeignKey(
        PointLot, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    source = models.CharField(max_length=32, choices=EntrySource.choices)
    source_id = models.CharField(max_length=255, blank=True, default="")
    points = models.BigIntegerField(default=0)
    pending_points = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=255, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, unique=True)
    staff_user_id = models.CharField(max_length=255, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "pk")
        indexes = [
            # Covering index: the balance is an index-only SUM on PostgreSQL.
            models.Index(
                fields=["account"],
                include=["points", "pending_points"],
                name="crm_ledger_account_sum_idx",
            ),
            models.Index(fields=["account", "-created_at", "-id"], name="crm_ledger_history_idx"),
            models.Index(fields=["source", "source_id"], name="crm_ledger_source_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}/{self.pending_points:+d} ({self.idempotency_key})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("Ledger entries are append-only: post a correcting entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("Ledger entries are append-only: post a correcting entry instead.")


class LotConsumption(models.Model):
    """Which lots a debit (redemption, expiry, clawback, debt repayment) took its points from,
    so a failed redemption gives back exactly those points to exactly those lots."""

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="consumptions")
    lot = models.ForeignKey(PointLot, on_delete=models.PROTECT, related_name="consumptions")
    points = models.BigIntegerField()

    class Meta:
        ordering = ("pk",)

    def __str__(self) -> str:
        return f"{self.points} from {self.lot_id}"


class TierChange(models.Model):
    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="tier_changes"
    )
    from_tier = models.CharField(max_length=64, blank=True, default="")
    to_tier = models.CharField(max_length=64)
    metric = models.DecimalField(**AMOUNT, default=Decimal(0))
    reason = models.CharField(max_length=255, blank=True, default="")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("changed_at", "pk")

    def __str__(self) -> str:
        return f"{self.from_tier or '-'} -> {self.to_tier}"


class RedemptionStatus(models.TextChoices):
    RESERVED = "reserved"  # points debited, gift card being created
    COMPLETED = "completed"
    RELEASED = "released"  # Saleor refused: the points went back


class Redemption(models.Model):
    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="redemptions"
    )
    idempotency_key = models.CharField(max_length=255, unique=True)
    points = models.BigIntegerField()
    amount = models.DecimalField(**AMOUNT)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=RedemptionStatus.choices)
    gift_card_id = models.CharField(max_length=255, blank=True, default="")
    gift_card_last4 = models.CharField(max_length=8, blank=True, default="")
    requested_by = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("pk",)
        indexes = [
            models.Index(
                fields=["created_at"],
                name="crm_redemption_open_idx",
                condition=models.Q(status="reserved"),
            )
        ]

    def __str__(self) -> str:
        return f"redemption {self.pk} {self.points} ({self.status})"


class LoyaltyProgramOverride(models.Model):
    """Program settings a staff member saved through the API, for one channel (slug or id, as
    entered) or for every channel (``channel=""``). Only the keys set here override the
    deployment's configuration; the values are stored in the canonical form of
    ``config.config_as_dict`` and parsed by the same code as the configuration."""

    channel = models.CharField(max_length=255, unique=True, blank=True, default="")
    values = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_user_id = models.CharField(max_length=255, blank=True, default="")
    updated_by_email = models.CharField(max_length=255, blank=True, default="")

    def __str__(self) -> str:
        return f"loyalty overrides {self.channel or '(all channels)'}"


class LoyaltyProgramSettingsChange(models.Model):
    """Audit trail of program edits (append-only): who changed which keys of which channel from
    what to what, and when. ``changes`` is ``{key: {"old": value|None, "new": value|None}}``
    where ``None`` means "not overridden" (the configuration applies)."""

    channel = models.CharField(max_length=255, blank=True, default="")
    changes = models.JSONField(default=dict)
    changed_by_user_id = models.CharField(max_length=255, blank=True, default="")
    changed_by_email = models.CharField(max_length=255, blank=True, default="")
    changed_by_app_id = models.CharField(max_length=255, blank=True, default="")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("changed_at", "pk")

    def __str__(self) -> str:
        return f"loyalty settings {self.channel or '(all channels)'} at {self.changed_at}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise RuntimeError("Loyalty settings changes are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Loyalty settings changes are append-only.")
