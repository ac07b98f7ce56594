"""Posting to the ledger. Everything here expects the account row to be locked
(``lock_account``) by the caller's transaction: that lock serialises all changes of one
account (earning, redemption, expiry), so in-memory arithmetic on it is safe and two
redemptions can never both spend the same points."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.loyalty.config import ProgramConfig
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    EntrySource,
    LedgerEntry,
    LotConsumption,
    LotStatus,
    LoyaltyAccount,
    PointLot,
)
from saleor_crm_plugin.loyalty.rules import add_months


def lock_account(
    customer: Customer, channel_id: str, channel_slug: str = "", currency: str = ""
) -> tuple[LoyaltyAccount, bool]:
    """The customer's account in the channel, locked for this transaction; created if missing.
    Concurrent creators meet on the unique constraint and retry."""
    for _ in range(3):
        account = (
            LoyaltyAccount.objects.select_for_update()
            .filter(customer=customer, channel_id=channel_id)
            .first()
        )
        if account is not None:
            changed = []
            if channel_slug and account.channel_slug != channel_slug:
                account.channel_slug = channel_slug
                changed.append("channel_slug")
            if currency and not account.currency:
                account.currency = currency
                changed.append("currency")
            if changed:
                LoyaltyAccount.objects.filter(pk=account.pk).update(
                    **{name: getattr(account, name) for name in changed}
                )
            return account, False
        try:
            with transaction.atomic():
                account = LoyaltyAccount.objects.create(
                    customer=customer,
                    channel_id=channel_id,
                    channel_slug=channel_slug,
                    currency=currency,
                )
            account = LoyaltyAccount.objects.select_for_update().get(pk=account.pk)
            return account, True
        except IntegrityError:
            continue
    raise RuntimeError(f"Could not lock the loyalty account of {customer.pk} in {channel_id}")


@dataclass
class Posting:
    """One unit of work on a locked account; ``finish`` saves the cached sums once."""

    account: LoyaltyAccount
    config: ProgramConfig
    now: datetime
    initial: tuple[int, int, str] = (0, 0, "")
    dirty_lots: dict[int, PointLot] = field(default_factory=dict)
    entries: list[LedgerEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.initial = (self.account.balance, self.account.pending, self.account.tier)

    @property
    def changed(self) -> bool:
        return self.initial != (self.account.balance, self.account.pending, self.account.tier)

    def post(
        self,
        *,
        kind: EntryKind,
        source: str,
        key: str,
        points: int = 0,
        pending: int = 0,
        lot: PointLot | None = None,
        source_id: str = "",
        reason: str = "",
        staff_user_id: str = "",
        data: dict[str, Any] | None = None,
    ) -> LedgerEntry:
        entry = LedgerEntry.objects.create(
            account=self.account,
            lot=lot,
            kind=kind,
            source=source,
            source_id=source_id,
            points=points,
            pending_points=pending,
            reason=reason[:255],
            idempotency_key=key,
            staff_user_id=staff_user_id,
            data=data or {},
            created_at=self.now,
        )
        self.account.balance += points
        self.account.pending += pending
        self.entries.append(entry)
        return entry

    def touch(self, lot: PointLot) -> None:
        if lot.pk is not None:
            self.dirty_lots[lot.pk] = lot

    def credit(
        self,
        *,
        key: str,
        source: EntrySource,
        points: int,
        kind: EntryKind = EntryKind.BONUS,
        source_id: str = "",
        reason: str = "",
        staff_user_id: str = "",
        data: dict[str, Any] | None = None,
    ) -> PointLot:
        """Spendable points right away (bonuses, staff credits): a lot plus its entry."""
        lot = PointLot.objects.create(
            account=self.account,
            key=key,
            source=source,
            source_id=source_id,
            status=LotStatus.ACTIVE,
            points=points,
            base_points=points,
            remaining=points,
            earned_at=self.now,
            confirmed_at=self.now,
            expires_at=self.expiry_for_new_lot(),
        )
        entry = self.post(
            kind=kind,
            source=source,
            key=key,
            points=points,
            lot=lot,
            source_id=source_id,
            reason=reason,
            staff_user_id=staff_user_id,
            data=data,
        )
        self.account.lifetime_earned += points
        self.pay_debt(lot, entry)
        self.activity()
        return lot

    def expiry_for_new_lot(self) -> datetime | None:
        if not self.config.expiry_months:
            return None
        return add_months(self.now, self.config.expiry_months)

    def pay_debt(self, lot: PointLot, entry: LedgerEntry) -> None:
        """Points reversed after they were spent are owed; new points cover them first."""
        if self.account.debt <= 0 or lot.remaining <= 0:
            return
        pay = min(self.account.debt, lot.remaining)
        lot.remaining -= pay
        self.account.debt -= pay
        if lot.remaining == 0:
            lot.status = LotStatus.SPENT
        LotConsumption.objects.create(entry=entry, lot=lot, points=pay)
        self.touch(lot)

    def available_lots(self, exclude: PointLot | None = None) -> list[PointLot]:
        """Spendable lots, first to expire first (never-expiring last, then oldest)."""
        lots = PointLot.objects.filter(
            account=self.account, status=LotStatus.ACTIVE, remaining__gt=0
        ).order_by(F("expires_at").asc(nulls_last=True), "earned_at", "pk")
        if exclude is not None:
            lots = lots.exclude(pk=exclude.pk)
        # Lots already changed in this unit of work are taken from memory.
        return [self.dirty_lots.get(lot.pk, lot) for lot in lots]

    def consume(self, points: int, entry: LedgerEntry, exclude: PointLot | None = None) -> int:
        """Take up to ``points`` from spendable lots; return how many were taken."""
        taken = 0
        rows = []
        for lot in self.available_lots(exclude):
            if taken >= points:
                break
            if lot.remaining <= 0:
                continue
            take = min(lot.remaining, points - taken)
            lot.remaining -= take
            if lot.remaining == 0:
                lot.status = LotStatus.SPENT
            taken += take
            rows.append(LotConsumption(entry=entry, lot=lot, points=take))
            self.touch(lot)
        if rows:
            LotConsumption.objects.bulk_create(rows)
        return taken

    def activity(self) -> None:
        self.account.last_activity_at = self.now
        if self.config.expiry_mode == "inactivity" and self.config.expiry_months:
            # Inactivity expiry: every activity pushes the expiry of all spendable points.
            PointLot.objects.filter(account=self.account, status=LotStatus.ACTIVE).update(
                expires_at=add_months(self.now, self.config.expiry_months), warned_at=None
            )
            for lot in self.dirty_lots.values():
                if lot.status == LotStatus.ACTIVE:
                    lot.expires_at = add_months(self.now, self.config.expiry_months)
                    lot.warned_at = None

    def finish(self) -> None:
        for lot in self.dirty_lots.values():
            lot.save()
        self.dirty_lots.clear()
        LoyaltyAccount.objects.filter(pk=self.account.pk).update(
            balance=self.account.balance,
            pending=self.account.pending,
            debt=self.account.debt,
            lifetime_earned=self.account.lifetime_earned,
            lifetime_redeemed=self.account.lifetime_redeemed,
            tier=self.account.tier,
            tier_since=self.account.tier_since,
            last_activity_at=self.account.last_activity_at,
        )
        if self.changed:
            write_back(self.account)
        self.initial = (self.account.balance, self.account.pending, self.account.tier)


def write_back(account: LoyaltyAccount) -> None:
    """Mirror tier and balance into the customer's Saleor private metadata (batched by the
    write-back task). Plain keys describe the account that changed last; per-channel keys keep
    every channel visible for customers who shop in several."""
    from saleor_crm_plugin.writeback.services import queue_private_metadata

    customer = account.customer
    if customer.saleor_user_id is None or customer.is_erased:
        return
    slug = account.channel_slug or account.channel_id
    queue_private_metadata(
        customer.saleor_user_id,
        {
            "crm.points": str(account.balance),
            "crm.tier": account.tier,
            f"crm.points.{slug}": str(account.balance),
            f"crm.tier.{slug}": account.tier,
        },
    )
