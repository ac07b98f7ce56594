"""Read models for APIs and reports: account view, history, program summary, and the audit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.loyalty.config import ProgramConfig, TierRule, program_config
from saleor_crm_plugin.loyalty.earning import _Book, order_histories
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    LedgerEntry,
    LotStatus,
    LoyaltyAccount,
    PointLot,
    Redemption,
    RedemptionStatus,
)
from saleor_crm_plugin.loyalty.rules import (
    to_points,
)

# -- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpiringPoints:
    points: int
    expires_at: datetime


@dataclass(frozen=True)
class AccountView:
    """Everything a storefront or dashboard shows about one account, as plain data."""

    account_id: int
    channel_id: str
    channel_slug: str
    currency: str
    balance: int
    pending: int
    debt: int
    lifetime_earned: int
    lifetime_redeemed: int
    tier: TierRule
    tier_metric: Decimal
    tier_held_until: datetime | None
    next_tier: TierRule | None
    to_next_tier: Decimal
    progress: Decimal
    balance_value: Decimal  # what the balance is worth in gift cards
    expiring: list[ExpiringPoints] = field(default_factory=list)


def get_account(customer: Customer, channel_id: str) -> LoyaltyAccount | None:
    return LoyaltyAccount.objects.filter(customer=customer, channel_id=channel_id).first()


def find_account(customer: Customer, channel: str) -> LoyaltyAccount | None:
    """The customer's account in ``channel`` (a channel slug or a Saleor Channel ID)."""
    return (
        LoyaltyAccount.objects.filter(customer=customer)
        .filter(Q(channel_slug=channel) | Q(channel_id=channel))
        .order_by("pk")
        .first()
    )


def resolve_channel(customer: Customer, channel: str) -> tuple[str, str, str]:
    """``(channel_id, slug, currency)`` of ``channel`` (slug or Saleor Channel ID), as known
    from the customer's account or any order in that channel. Raises ``NOT_FOUND``."""
    if not channel:
        raise LoyaltyError(LoyaltyErrorCode.REQUIRED, "channel", "A channel is required.")
    account = find_account(customer, channel)
    if account is not None:
        return account.channel_id, account.channel_slug, account.currency
    order = (
        Order.objects.filter(Q(channel_slug=channel) | Q(channel_id=channel))
        .order_by("-created_at")
        .values_list("channel_id", "channel_slug", "currency")
        .first()
    )
    if order is None:
        raise LoyaltyError(LoyaltyErrorCode.NOT_FOUND, "channel", f"Unknown channel {channel!r}.")
    return order


def balance_of(account_id: int) -> tuple[int, int]:
    """``(balance, pending)`` summed from the ledger itself (the definition of the balance)."""
    sums = LedgerEntry.objects.filter(account_id=account_id).aggregate(
        points=Sum("points"), pending=Sum("pending_points")
    )
    return int(sums["points"] or 0), int(sums["pending"] or 0)


def account_view(
    account: LoyaltyAccount, *, now: datetime | None = None, expiring_within_days: int | None = None
) -> AccountView:
    return account_views([account], now=now, expiring_within_days=expiring_within_days)[0]


def account_views(
    accounts: Sequence[LoyaltyAccount],
    *,
    now: datetime | None = None,
    expiring_within_days: int | None = None,
) -> list[AccountView]:
    """Views of many accounts in two queries (order histories, expiring lots), in input order:
    what a list of customers with their tier and progress needs."""
    now = now or timezone.now()
    if not accounts:
        return []
    histories, _ = order_histories({a.customer_id for a in accounts})
    configs = {a.pk: program_config(a.channel_id, a.channel_slug) for a in accounts}
    widest = max(
        (c.expiry_warning_days for c in configs.values())
        if expiring_within_days is None
        else [expiring_within_days]
    )
    expiring_rows: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for row in (
        PointLot.objects.filter(
            account_id__in=[a.pk for a in accounts],
            status=LotStatus.ACTIVE,
            remaining__gt=0,
            expires_at__lte=now + timezone.timedelta(days=widest),
        )
        .values("account_id", "expires_at")
        .annotate(points=Sum("remaining"))
        .order_by("account_id", "expires_at")
    ):
        expiring_rows[row["account_id"]].append((row["expires_at"], row["points"]))
    views = []
    for account in accounts:
        config = configs[account.pk]
        book = _Book(histories.get((account.customer_id, account.channel_id), []), config)
        status = book.status(now)
        days = config.expiry_warning_days if expiring_within_days is None else expiring_within_days
        horizon = now + timezone.timedelta(days=days)
        value = (Decimal(max(account.balance, 0)) * config.redemption_rate).quantize(
            Decimal("0.01")
        )
        views.append(
            AccountView(
                account_id=account.pk,
                channel_id=account.channel_id,
                channel_slug=account.channel_slug,
                currency=account.currency,
                balance=account.balance,
                pending=account.pending,
                debt=account.debt,
                lifetime_earned=account.lifetime_earned,
                lifetime_redeemed=account.lifetime_redeemed,
                tier=config.tier(account.tier) or status.tier,
                tier_metric=status.metric,
                tier_held_until=status.held_until,
                next_tier=status.next_tier,
                to_next_tier=status.to_next,
                progress=status.progress,
                balance_value=value,
                expiring=[
                    ExpiringPoints(points=points, expires_at=at)
                    for at, points in expiring_rows.get(account.pk, [])
                    if at <= horizon
                ],
            )
        )
    return views


def history(
    account: LoyaltyAccount, *, kinds: Iterable[str] | None = None
) -> QuerySet[LedgerEntry]:
    """Newest first, with a unique tiebreaker so cursor pagination is stable."""
    entries = LedgerEntry.objects.filter(account=account)
    if kinds:
        entries = entries.filter(kind__in=list(kinds))
    return entries.order_by("-created_at", "-pk")


@dataclass(frozen=True)
class ChannelSummary:
    channel_id: str
    channel_slug: str
    currency: str
    accounts: int
    issued: int  # confirmed + bonuses + positive adjustments
    pending: int
    redeemed: int
    expired: int
    reversed: int
    outstanding: int  # spendable points (the liability)
    debt: int
    liability: Decimal  # outstanding points at the redemption rate
    tiers: dict[str, int] = field(default_factory=dict)


def program_summary(channel_id: str | None = None) -> list[ChannelSummary]:
    """Points issued/redeemed/expired and outstanding liability per channel."""
    accounts = LoyaltyAccount.objects.all()
    if channel_id:
        accounts = accounts.filter(channel_id=channel_id)
    per_channel = (
        accounts.values("channel_id")
        .annotate(
            n=Count("pk"),
            outstanding=Sum("balance"),
            pending=Sum("pending"),
            debt=Sum("debt"),
        )
        .order_by("channel_id")
    )
    entries = LedgerEntry.objects.filter(account__in=accounts)
    sums = {
        (row["account__channel_id"], row["kind"]): row
        for row in entries.values("account__channel_id", "kind")
        .annotate(points=Sum("points"), pending=Sum("pending_points"))
        .order_by()
    }
    tiers: dict[str, dict[str, int]] = {}
    for row in accounts.values("channel_id", "tier").annotate(n=Count("pk")).order_by():
        tiers.setdefault(row["channel_id"], {})[row["tier"]] = row["n"]
    result = []
    for row in per_channel:
        cid = row["channel_id"]
        sample = accounts.filter(channel_id=cid).values("channel_slug", "currency").first() or {}
        config = program_config(cid, sample.get("channel_slug", ""))

        def points(kind: str, *, cid: str = cid) -> int:
            return int((sums.get((cid, kind)) or {}).get("points") or 0)

        outstanding = int(row["outstanding"] or 0)
        adjust_positive = int(
            entries.filter(account__channel_id=cid, kind=EntryKind.ADJUST, points__gt=0).aggregate(
                s=Sum("points")
            )["s"]
            or 0
        )
        result.append(
            ChannelSummary(
                channel_id=cid,
                channel_slug=sample.get("channel_slug", ""),
                currency=sample.get("currency", ""),
                accounts=row["n"],
                issued=points(EntryKind.CONFIRM)
                + points(EntryKind.BONUS)
                + points(EntryKind.EARN)
                + adjust_positive,
                pending=int(row["pending"] or 0),
                redeemed=-(points(EntryKind.REDEEM) + points(EntryKind.RELEASE)),
                expired=-points(EntryKind.EXPIRE),
                reversed=-points(EntryKind.REVERSE),
                outstanding=outstanding,
                debt=int(row["debt"] or 0),
                liability=(Decimal(max(outstanding, 0)) * config.redemption_rate).quantize(
                    Decimal("0.01")
                ),
                tiers=tiers.get(cid, {}),
            )
        )
    return result


# -- audit -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditProblem:
    account_id: int
    check: str
    expected: int
    actual: int

    def __str__(self) -> str:
        return (
            f"account {self.account_id}: {self.check}: "
            f"expected {self.expected}, found {self.actual}"
        )


def audit(account_ids: Iterable[int] | None = None) -> list[AuditProblem]:
    """Prove the caches against the ledger: balance = sum(points), pending = sum(pending_points),
    balance = spendable lot remainders - debt, pending = open points of pending lots, and no
    open reservation older than it should be is left behind."""
    accounts = LoyaltyAccount.objects.order_by("pk")
    entries = LedgerEntry.objects.all()
    lots = PointLot.objects.all()
    if account_ids is not None:
        ids = list(account_ids)
        accounts = accounts.filter(pk__in=ids)
        entries = entries.filter(account_id__in=ids)
        lots = lots.filter(account_id__in=ids)
    ledger = {
        row["account_id"]: row
        for row in entries.values("account_id")
        .annotate(points=Sum("points"), pending=Sum("pending_points"))
        .order_by()
    }
    lot_sums = {
        row["account_id"]: row
        for row in lots.values("account_id")
        .annotate(
            spendable=Sum("remaining", filter=Q(status=LotStatus.ACTIVE)),
            open=Sum(F("points") - F("reversed_points"), filter=Q(status=LotStatus.PENDING)),
            dead=Sum("remaining", filter=~Q(status=LotStatus.ACTIVE)),
        )
        .order_by()
    }
    problems = []
    for account_id, balance, pending, debt in accounts.values_list(
        "pk", "balance", "pending", "debt"
    ).iterator(chunk_size=2000):
        sums = ledger.get(account_id, {})
        lot_row = lot_sums.get(account_id, {})
        checks = (
            ("balance = sum of entries", int(sums.get("points") or 0), balance),
            ("pending = sum of pending entries", int(sums.get("pending") or 0), pending),
            ("balance = spendable lots - debt", int(lot_row.get("spendable") or 0) - debt, balance),
            ("pending = open pending lots", int(lot_row.get("open") or 0), pending),
            ("closed lots hold no points", 0, int(lot_row.get("dead") or 0)),
        )
        for name, expected, actual in checks:
            if expected != actual:
                problems.append(AuditProblem(account_id, name, expected, actual))
    return problems


def open_reservations(older_than: datetime) -> QuerySet[Redemption]:
    return Redemption.objects.filter(status=RedemptionStatus.RESERVED, created_at__lt=older_than)


def points_value(points: int, config: ProgramConfig) -> Decimal:
    return (Decimal(points) * config.redemption_rate).quantize(Decimal("0.01"))


def points_for_amount(amount: Decimal, config: ProgramConfig) -> int:
    if config.redemption_rate <= 0:
        return 0
    return to_points(amount / config.redemption_rate, "up")
