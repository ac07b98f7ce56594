"""Loyalty business rules: earning from orders, bonuses, staff adjustments, queries and the audit.

Order points are *reconciled*, not incremented: each time an order event is handled, the
order's lots are compared with what the order (as the customer projection now knows it) should
have earned, reversed and confirmed, and only the difference is posted. So a replayed event
posts nothing, and events arriving in any order converge to the same lots and balances.

Everything here runs inside the caller's transaction and locks the account row first; API
layers (GraphQL, CLI) call these functions and map ``LoyaltyError`` onto their error format.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.events.types import CrmEvent, EventKind
from saleor_crm_plugin.loyalty.config import ProgramConfig, TierRule, program_config
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.ledger import Posting, flush, lock_account, lock_accounts
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    EntrySource,
    LedgerEntry,
    LotStatus,
    LoyaltyAccount,
    PointLot,
    Redemption,
    RedemptionStatus,
    TierChange,
)
from saleor_crm_plugin.loyalty.rules import (
    OrderFacts,
    confirm_after,
    order_points,
    reversal_target,
    spend_after_refunds,
    to_points,
)
from saleor_crm_plugin.loyalty.tiers import TierStatus, tier_at

logger = logging.getLogger(__name__)

# An order with a return on its way does not confirm until the refund settles it.
RETURN_HOLD_STATUSES = frozenset({"RETURNED"})


# -- order history ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    created_at: datetime
    fulfilled_at: datetime | None
    facts: OrderFacts


_HISTORY_FIELDS = (
    "saleor_order_id",
    "created_at",
    "fulfilled_at",
    "cancelled_at",
    "status",
    "total_gross",
    "total_net",
    "shipping_gross",
    "total_charged",
    "total_refunded",
)


def _row(values: Sequence[object]) -> OrderRow:
    (oid, created, fulfilled, cancelled, status, gross, net, shipping, charged, refunded) = values
    return OrderRow(
        order_id=oid,  # type: ignore[arg-type]
        created_at=created,  # type: ignore[arg-type]
        fulfilled_at=fulfilled,  # type: ignore[arg-type]
        facts=OrderFacts(
            status=status,  # type: ignore[arg-type]
            total_gross=gross,  # type: ignore[arg-type]
            total_net=net,  # type: ignore[arg-type]
            shipping_gross=shipping,  # type: ignore[arg-type]
            total_charged=charged,  # type: ignore[arg-type]
            total_refunded=refunded,  # type: ignore[arg-type]
            cancelled=cancelled is not None,
        ),
    )


def order_histories(
    customer_ids: Iterable[int],
) -> tuple[dict[tuple[int, str], list[OrderRow]], set[int]]:
    """Every order of these customers per (customer, channel), oldest first, and which of the
    customers take part (registered, not erased) - one query."""
    histories: dict[tuple[int, str], list[OrderRow]] = defaultdict(list)
    members: set[int] = set()
    rows = (
        Order.objects.filter(customer_id__in=list(customer_ids))
        .order_by("customer_id", "channel_id", "created_at", "saleor_order_id")
        .values_list(
            "customer_id",
            "channel_id",
            "customer__saleor_user_id",
            "customer__erased_at",
            *_HISTORY_FIELDS,
        )
    )
    for values in rows:
        histories[(values[0], values[1])].append(_row(values[4:]))
        if values[2] is not None and values[3] is None:
            members.add(values[0])
    return histories, members


class _Book:
    """The order history of one account plus memoised tier arithmetic over it."""

    def __init__(self, rows: list[OrderRow], config: ProgramConfig) -> None:
        self.rows = rows
        self.config = config
        self.by_id = {row.order_id: row for row in rows}
        self.contributions = [(row.created_at, self._value(row)) for row in rows]
        self._multipliers: dict[str, Decimal] = {}

    def _value(self, row: OrderRow) -> Decimal:
        if self.config.tier_basis == "points":
            base, _ = order_points(row.facts, self.config)
            return Decimal(base) - Decimal(reversal_target(base, row.facts, proportional=True))
        return spend_after_refunds(row.facts, self.config)

    def multiplier(self, row: OrderRow) -> Decimal:
        """The multiplier of the tier held just before the order was placed, from the other
        orders: a function of history, so the order events arrive in does not matter."""
        cached = self._multipliers.get(row.order_id)
        if cached is None:
            if len(self.config.tiers) == 1:
                cached = self.config.tiers[0].multiplier
            else:
                before = [(t, v) for t, v in self.contributions if t < row.created_at]
                cached = tier_at(row.created_at, before, self.config).tier.multiplier
            self._multipliers[row.order_id] = cached
        return cached

    def status(self, at: datetime) -> TierStatus:
        return tier_at(at, self.contributions, self.config)

    def first_earning(self) -> OrderRow | None:
        return next((row for row in self.rows if _earns(row, self.config)), None)


def _earns(row: OrderRow, config: ProgramConfig) -> bool:
    base, _ = order_points(row.facts, config)
    return base > 0 and not row.facts.fully_reversed


# -- event handler and replays ---------------------------------------------------------------


def handle_event(event: CrmEvent) -> None:
    """Domain handler registered in ``events/handlers.py`` (runs after the projection)."""
    if event.order is not None:
        order = (
            Order.objects.filter(saleor_order_id=event.order.saleor_order_id)
            .values_list("customer_id", "channel_id", "channel_slug", "currency")
            .first()
        )
        if order is not None and order[0] is not None:
            _process([(*order, event.order.saleor_order_id)])
        return
    if event.customer is not None and event.kind != EventKind.CUSTOMER_DELETED:
        customer = Customer.objects.filter(saleor_user_id=event.customer.saleor_user_id).first()
        if customer is not None:
            sync_customer(customer)


def sync_customer(customer: Customer, *, now: datetime | None = None) -> None:
    """Orders placed as a guest join the account when the customer registers: give them their
    points (once, like any order)."""
    if customer.saleor_user_id is None or customer.is_erased:
        return
    known = PointLot.objects.filter(account__customer=customer).values("order_id")
    orders = (
        Order.objects.filter(customer=customer, total_charged__gt=0)
        .exclude(saleor_order_id__in=known)
        .values_list("saleor_order_id", flat=True)
    )
    replay_orders(list(orders), now=now)


def sync_order(order: Order, *, now: datetime | None = None) -> LoyaltyAccount | None:
    """Bring the account of the order's customer in line with the order. Idempotent."""
    if order.customer_id is None:
        return None
    postings = _process(
        [(order.customer_id, order.channel_id, order.channel_slug, order.currency,
          order.saleor_order_id)],
        now=now,
    )  # fmt: skip
    return postings[0].account if postings else None


def replay_orders(
    order_ids: Sequence[str] | None = None, *, now: datetime | None = None, chunk: int = 2000
) -> int:
    """Reconcile many orders at once (backfill, replay, bulk repair): the same rules as the
    event handler, with set-based reads and writes per chunk of accounts. Idempotent."""
    orders = Order.objects.filter(customer__isnull=False)
    if order_ids is not None:
        orders = orders.filter(saleor_order_id__in=list(order_ids))
    items = list(
        orders.order_by("customer_id", "channel_id", "created_at").values_list(
            "customer_id", "channel_id", "channel_slug", "currency", "saleor_order_id"
        )
    )
    done = 0
    start = 0
    while start < len(items):
        end = min(start + chunk, len(items))
        # never split one account's orders over two chunks
        while end < len(items) and items[end][:2] == items[end - 1][:2]:
            end += 1
        _process(items[start:end], now=now)
        done += end - start
        start = end
    return done


def _process(
    items: Sequence[tuple[int, str, str, str, str]],
    *,
    now: datetime | None = None,
    touch_only: bool = False,
    reason: str = "order",
) -> list[Posting]:
    """Reconcile the accounts of ``(customer_id, channel_id, slug, currency, order_id)``
    items, one transaction. An account is opened only for an order that earns."""
    now = now or timezone.now()
    by_account: dict[tuple[int, str], tuple[str, str, list[str]]] = {}
    for customer_id, channel_id, slug, currency, order_id in items:
        entry = by_account.setdefault((customer_id, channel_id), (slug, currency, []))
        if order_id:
            entry[2].append(order_id)
    with transaction.atomic(savepoint=False):
        histories, members = order_histories({key[0] for key in by_account})
        configs = {}
        for key, (slug, _, _) in by_account.items():
            if key[0] in members:
                config = program_config(key[1], slug)
                if config.enabled:
                    configs[key] = config
        if not configs:
            return []
        wanted = {}
        for key, config in configs.items():
            slug, currency, touched = by_account[key]
            history = {row.order_id: row for row in histories.get(key, [])}
            opens = not touch_only and any(
                oid in history and _earns(history[oid], config) for oid in touched
            )
            wanted[key] = ((key[0], key[1], slug, currency), opens)
        accounts, created = lock_accounts(wanted)
        lots: dict[int, list[PointLot]] = defaultdict(list)
        old_accounts = [a.pk for key, a in accounts.items() if key not in created]
        if old_accounts:
            for lot in PointLot.objects.filter(account_id__in=old_accounts).order_by("pk"):
                lots[lot.account_id].append(lot)
        postings = []
        for key, account in accounts.items():
            config = configs[key]
            work = Posting(account, config, now, lots_loaded=lots.get(account.pk, []))
            if key in created:
                _signup_bonus(work)
            book = _Book(histories.get(key, []), config)
            _reconcile(work, book, touched=by_account[key][2], reason=reason)
            postings.append(work)
        flush(postings)
    return postings


def _reconcile(
    work: Posting, book: _Book, *, touched: Iterable[str], reason: str = "order"
) -> None:
    """Create missing order lots for ``touched`` orders, then bring every lot that can still
    change (pending lots, and all lots of the touched orders) in line with the history."""
    config = work.config
    touched = set(touched)
    lots = [
        lot
        for lot in work.all_lots()
        if lot.status == LotStatus.PENDING or (lot.order_id and lot.order_id in touched)
    ]
    keys = {lot.key for lot in work.all_lots()}
    for order_id in sorted(touched):
        row = book.by_id.get(order_id)
        if row is None or f"order:{order_id}" in keys or not _earns(row, config):
            continue
        lot = _open_order_lot(work, book, row)
        if lot is not None:
            lots.append(lot)
            keys.add(lot.key)
    if config.first_order_bonus > 0:
        bonus_key = f"first-order:{work.account.pk}"
        current = next((lot for lot in work.all_lots() if lot.key == bonus_key), None)
        lot = _first_order_bonus(work, book, current)
        if lot is not None and lot not in lots:
            lots.append(lot)
    for lot in lots:
        row = book.by_id.get(lot.order_id) if lot.order_id else None
        if row is not None:
            _sync_lot(work, book, lot, row)
    _evaluate_tier(work, book, reason)


def _open_order_lot(work: Posting, book: _Book, row: OrderRow) -> PointLot | None:
    multiplier = book.multiplier(row)
    base, points = order_points(row.facts, work.config, multiplier)
    if points <= 0:
        return None
    key = f"order:{row.order_id}"
    lot = work.new_lot(
        key=key,
        source=EntrySource.ORDER,
        source_id=row.order_id,
        order_id=row.order_id,
        proportional=True,
        status=LotStatus.PENDING,
        points=points,
        base_points=base,
        multiplier=multiplier,
        earned_at=row.created_at,
        confirm_after=confirm_after(row.fulfilled_at, work.config),
    )
    work.post(
        kind=EntryKind.PENDING,
        source=EntrySource.ORDER,
        source_id=row.order_id,
        key=key,
        pending=points,
        lot=lot,
        reason="Order paid",
        data={"base": base, "multiplier": str(multiplier)},
    )
    return lot


def _first_order_bonus(work: Posting, book: _Book, lot: PointLot | None) -> PointLot | None:
    """The bonus belongs to the earliest kept paid order, whichever order's event came first:
    while it is pending it follows the history to that order."""
    first = book.first_earning()
    if lot is None:
        if first is None:
            return None
        lot = work.new_lot(
            key=f"first-order:{work.account.pk}",
            source=EntrySource.FIRST_ORDER,
            source_id=first.order_id,
            order_id=first.order_id,
            status=LotStatus.PENDING,
            points=work.config.first_order_bonus,
            base_points=work.config.first_order_bonus,
            earned_at=first.created_at,
            confirm_after=confirm_after(first.fulfilled_at, work.config),
        )
        work.post(
            kind=EntryKind.PENDING,
            source=EntrySource.FIRST_ORDER,
            source_id=first.order_id,
            key=lot.key,
            pending=lot.points,
            lot=lot,
            reason="First order bonus",
        )
        return lot
    movable = lot.status == LotStatus.PENDING and lot.reversed_points == 0
    if movable and first is not None and lot.order_id != first.order_id:
        lot.order_id = lot.source_id = first.order_id
        lot.earned_at = first.created_at
        work.touch(lot)
    return lot


def _sync_lot(work: Posting, book: _Book, lot: PointLot, row: OrderRow) -> None:
    facts = row.facts
    if lot.status == LotStatus.PENDING:
        if lot.proportional:
            multiplier = book.multiplier(row)
            base, points = order_points(facts, work.config, multiplier)
            if points > 0 and points != lot.points:
                work.post(
                    kind=EntryKind.PENDING,
                    source=lot.source,
                    source_id=lot.source_id,
                    key=f"{lot.key}:pending:{lot.revision}",
                    pending=points - lot.points,
                    lot=lot,
                    reason="Order points recalculated",
                    data={"base": base, "multiplier": str(multiplier), "was": lot.points},
                )
                lot.points, lot.base_points, lot.multiplier = points, base, multiplier
        delta = reversal_target(lot.points, facts, proportional=lot.proportional)
        delta -= lot.reversed_points
        if delta:
            work.post(
                kind=EntryKind.REVERSE,
                source=lot.source,
                source_id=lot.source_id,
                key=f"{lot.key}:reverse:{lot.revision}",
                pending=-delta,
                lot=lot,
                reason=_reversal_reason(facts),
                data=_refund_data(facts),
            )
            lot.reversed_points += delta
        if lot.open_points <= 0:
            lot.status = LotStatus.REVERSED
            work.touch(lot)
            return
        due = confirm_after(row.fulfilled_at, work.config)
        if due != lot.confirm_after:
            lot.confirm_after = due
            work.touch(lot)
        if due is not None and due <= work.now and facts.status not in RETURN_HOLD_STATUSES:
            _confirm(work, lot)
        return
    if lot.status in (LotStatus.ACTIVE, LotStatus.SPENT):
        target = reversal_target(lot.points, facts, proportional=lot.proportional)
        delta = target - lot.reversed_points
        if delta > 0:
            reverse_active(
                work, lot, delta, reason=_reversal_reason(facts), data=_refund_data(facts)
            )


def _reversal_reason(facts: OrderFacts) -> str:
    if facts.cancelled or facts.status == "CANCELED":
        return "Order cancelled"
    if facts.fully_reversed:
        return "Order fully refunded"
    return "Order partially refunded"


def _refund_data(facts: OrderFacts) -> dict[str, str]:
    return {"refunded": str(facts.total_refunded), "paid": str(facts.paid_original)}


def _confirm(work: Posting, lot: PointLot) -> None:
    amount = lot.open_points
    entry = work.post(
        kind=EntryKind.CONFIRM,
        source=lot.source,
        source_id=lot.source_id,
        key=f"{lot.key}:confirm",
        pending=-amount,
        points=amount,
        lot=lot,
        reason="Return window closed",
    )
    lot.status = LotStatus.ACTIVE
    lot.remaining = amount
    lot.confirmed_at = work.now
    lot.expires_at = work.expiry_for_new_lot()
    work.account.lifetime_earned += amount
    work.pay_debt(lot, entry)
    work.activity()


def reverse_active(
    work: Posting, lot: PointLot, delta: int, *, reason: str, data: dict[str, str] | None = None
) -> None:
    """Take back ``delta`` confirmed points of a lot. What was already spent comes from other
    lots (first to expire); what is still missing makes the balance negative (a debt later
    earnings repay) or, under the clawback policy, is written off by an explicit entry. Never
    silently lost."""
    revision = lot.revision
    entry = work.post(
        kind=EntryKind.REVERSE,
        source=lot.source,
        source_id=lot.source_id,
        key=f"{lot.key}:reverse:{revision}",
        points=-delta,
        lot=lot,
        reason=reason,
        data=data,
    )
    from_lot = min(delta, lot.remaining)
    lot.remaining -= from_lot
    lot.reversed_points += delta
    work.account.lifetime_earned -= delta  # "earned" means kept, whatever order events came in
    shortfall = delta - from_lot
    if from_lot:
        work.consumed(entry, lot, from_lot)
    if shortfall:
        shortfall -= work.consume(shortfall, entry, exclude=lot)
    if shortfall:
        if work.config.negative_balance == "clawback":
            work.post(
                kind=EntryKind.ADJUST,
                source=EntrySource.SYSTEM,
                source_id=lot.source_id,
                key=f"{lot.key}:write-off:{revision}",
                points=shortfall,
                lot=lot,
                reason="Clawback write-off: the reversed points had already been spent",
            )
        else:
            work.account.debt += shortfall
    if lot.remaining == 0:
        lot.status = LotStatus.REVERSED if lot.reversed_points >= lot.points else LotStatus.SPENT
    work.touch(lot)


def _evaluate_tier(work: Posting, book: _Book, reason: str = "order") -> TierStatus:
    status = book.status(work.now)
    account = work.account
    if account.tier != status.tier.code:
        work.tier_change(
            from_tier=account.tier,
            to_tier=status.tier.code,
            metric=status.metric,
            reason=reason,
            changed_at=work.now,
        )
        account.tier = status.tier.code
        account.tier_since = work.now
    return status


def lot_exists(key: str) -> bool:
    return PointLot.objects.filter(key=key).exists()


# -- periodic work ---------------------------------------------------------------------------


def confirm_due(*, now: datetime | None = None, batch: int = 500) -> int:
    """Confirm pending points whose return window has closed (beat task). Each account is
    reconciled against its orders, so a refund that arrived meanwhile is honoured first."""
    now = now or timezone.now()
    accounts = list(
        LoyaltyAccount.objects.filter(
            pk__in=PointLot.objects.filter(status=LotStatus.PENDING, confirm_after__lte=now).values(
                "account_id"
            )
        )
        .order_by("pk")
        .values_list("customer_id", "channel_id", "channel_slug", "currency")[:batch]
    )
    _process([(*account, "") for account in accounts], now=now, touch_only=True)
    return len(accounts)


def refresh_account(account_id: int, *, now: datetime | None = None) -> None:
    """Reconcile every still-changing lot of an account and re-evaluate its tier."""
    account = (
        LoyaltyAccount.objects.filter(pk=account_id)
        .values_list("customer_id", "channel_id", "channel_slug", "currency")
        .first()
    )
    if account is not None:
        _process([(*account, "")], now=now, touch_only=True)


def evaluate_tiers(
    *, now: datetime | None = None, channel_id: str | None = None, chunk: int = 1000
) -> int:
    """Nightly: tiers can drop when a hold period ends even without any new order (pending
    lots are reconciled on the way). Returns the number of tier changes."""
    now = now or timezone.now()
    accounts = LoyaltyAccount.objects.order_by("pk")
    if channel_id:
        accounts = accounts.filter(channel_id=channel_id)
    before = TierChange.objects.count()
    items = list(accounts.values_list("customer_id", "channel_id", "channel_slug", "currency"))
    for start in range(0, len(items), chunk):
        _process(
            [(*item, "") for item in items[start : start + chunk]],
            now=now,
            touch_only=True,
            reason="nightly",
        )
    return TierChange.objects.count() - before


# -- bonuses and staff adjustments -----------------------------------------------------------


@dataclass(frozen=True)
class BonusResult:
    awarded: bool
    points: int
    code: LoyaltyErrorCode | None = None
    lot_id: int | None = None


def _require_registered(customer: Customer, field_name: str = "customer") -> None:
    if customer.saleor_user_id is None or customer.is_erased:
        raise LoyaltyError(
            LoyaltyErrorCode.NOT_ELIGIBLE,
            field_name,
            "Only registered customers take part in the loyalty program.",
        )


def _channel_config(channel_id: str, channel_slug: str = "") -> ProgramConfig:
    if not channel_id:
        raise LoyaltyError(LoyaltyErrorCode.REQUIRED, "channel", "A channel is required.")
    config = program_config(channel_id, channel_slug)
    if not config.enabled:
        raise LoyaltyError(
            LoyaltyErrorCode.PROGRAM_DISABLED,
            "channel",
            "The loyalty program is not enabled in this channel.",
        )
    return config


def _signup_bonus(work: Posting) -> None:
    if work.config.signup_bonus <= 0:
        return
    key = f"signup:{work.account.customer_id}:{work.account.channel_id}"
    if work.has_lot(key):
        return
    work.credit(
        key=key,
        source=EntrySource.SIGNUP,
        points=work.config.signup_bonus,
        source_id=work.account.customer.saleor_user_id or "",
        reason="Welcome bonus",
    )


def open_account(
    customer: Customer,
    channel_id: str,
    channel_slug: str = "",
    currency: str = "",
    *,
    now: datetime | None = None,
) -> LoyaltyAccount:
    """Join the program in a channel explicitly (sign-up bonus included)."""
    _require_registered(customer)
    config = _channel_config(channel_id, channel_slug)
    with transaction.atomic():
        account, created = lock_account(customer, channel_id, channel_slug, currency)
        work = Posting(account, config, now or timezone.now())
        if created:
            _signup_bonus(work)
            _evaluate_tier(work, _Book([], config), reason="joined")
        work.finish()
    return account


def _bonus(
    customer: Customer,
    channel_id: str,
    *,
    key: str,
    source: EntrySource,
    points: int,
    reason: str,
    source_id: str = "",
    channel_slug: str = "",
    staff_user_id: str = "",
    now: datetime | None = None,
    kind: EntryKind = EntryKind.BONUS,
) -> BonusResult:
    config = _channel_config(channel_id, channel_slug)
    now = now or timezone.now()
    with transaction.atomic():
        account, created = lock_account(customer, channel_id, channel_slug)
        work = Posting(account, config, now)
        if created:
            _signup_bonus(work)
        existing = PointLot.objects.filter(key=key).first()
        if existing is not None:
            work.finish()
            return BonusResult(
                False, existing.points, LoyaltyErrorCode.ALREADY_AWARDED, existing.pk
            )
        lot, _ = work.credit(
            key=key,
            source=source,
            points=points,
            kind=kind,
            source_id=source_id,
            reason=reason,
            staff_user_id=staff_user_id,
        )
        work.finish()
    return BonusResult(True, points, None, lot.pk)


def award_review_bonus(
    *,
    customer: Customer,
    channel_id: str,
    review_id: str,
    channel_slug: str = "",
    approved_at: datetime | None = None,
) -> BonusResult:
    """Points for an approved review (for the reviews domain). Idempotent per review; at most
    ``review_bonus_cap`` per calendar month/year of approval. A capped or disabled bonus is a
    result (``awarded=False`` with a code), not an error: the review itself is fine."""
    _require_registered(customer)
    if not review_id:
        raise LoyaltyError(LoyaltyErrorCode.REQUIRED, "review_id", "A review id is required.")
    config = _channel_config(channel_id, channel_slug)
    if config.review_bonus <= 0:
        return BonusResult(False, 0, LoyaltyErrorCode.NOT_ELIGIBLE)
    approved_at = approved_at or timezone.now()
    key = f"review:{review_id}"
    if config.review_bonus_cap:
        start = approved_at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if config.review_bonus_period == "year":
            start = start.replace(month=1)
        with transaction.atomic():
            account, _ = lock_account(customer, channel_id, channel_slug)
            if lot_exists(key):
                lot = PointLot.objects.get(key=key)
                return BonusResult(False, lot.points, LoyaltyErrorCode.ALREADY_AWARDED, lot.pk)
            used = PointLot.objects.filter(
                account=account, source=EntrySource.REVIEW, earned_at__gte=start
            ).count()
            if used >= config.review_bonus_cap:
                return BonusResult(False, 0, LoyaltyErrorCode.CAP_REACHED)
            return _bonus(
                customer,
                channel_id,
                key=key,
                source=EntrySource.REVIEW,
                points=config.review_bonus,
                reason="Approved review",
                source_id=review_id,
                channel_slug=channel_slug,
                now=approved_at,
            )
    return _bonus(
        customer,
        channel_id,
        key=key,
        source=EntrySource.REVIEW,
        points=config.review_bonus,
        reason="Approved review",
        source_id=review_id,
        channel_slug=channel_slug,
        now=approved_at,
    )


def revoke_review_bonus(review_id: str, *, reason: str = "Review removed") -> int:
    """Take back a review bonus (review unpublished). Returns the points reversed."""
    with transaction.atomic():
        lot = PointLot.objects.filter(key=f"review:{review_id}").first()
        if lot is None:
            return 0
        account = LoyaltyAccount.objects.select_for_update().select_related("customer")
        account = account.get(pk=lot.account_id)
        lot.refresh_from_db()
        delta = lot.points - lot.reversed_points
        if delta <= 0 or lot.status == LotStatus.EXPIRED:
            return 0
        work = Posting(
            account, program_config(account.channel_id, account.channel_slug), timezone.now()
        )
        reverse_active(work, lot, delta, reason=reason)
        work.finish()
    return delta


def award_referral(
    *,
    referrer: Customer,
    referee: Customer,
    channel_id: str,
    channel_slug: str = "",
    now: datetime | None = None,
) -> tuple[BonusResult, BonusResult]:
    """Both sides of a referral, once per referred customer, never to oneself (same customer or
    same e-mail). Call it when the referee qualifies (e.g. their first paid order)."""
    _require_registered(referrer, "referrer")
    _require_registered(referee, "referee")
    same_email = bool(referrer.email) and referrer.email.lower() == referee.email.lower()
    if referrer.pk == referee.pk or same_email:
        raise LoyaltyError(
            LoyaltyErrorCode.SELF_REFERRAL, "referee", "Customers cannot refer themselves."
        )
    config = _channel_config(channel_id, channel_slug)
    referee_key = f"referral:{channel_id}:{referee.pk}:referee"
    if lot_exists(referee_key):
        raise LoyaltyError(
            LoyaltyErrorCode.ALREADY_AWARDED,
            "referee",
            "This customer's referral has already been rewarded.",
        )
    with transaction.atomic():
        # Lock both accounts in a fixed order so two crossing referrals cannot deadlock.
        for customer in sorted((referrer, referee), key=lambda c: c.pk):
            lock_account(customer, channel_id, channel_slug)
        source_id = f"{referrer.saleor_user_id}->{referee.saleor_user_id}"
        results = []
        for customer, points, side in (
            (referrer, config.referral_referrer_bonus, "referrer"),
            (referee, config.referral_referee_bonus, "referee"),
        ):
            if points <= 0:
                results.append(BonusResult(False, 0, LoyaltyErrorCode.NOT_ELIGIBLE))
                continue
            results.append(
                _bonus(
                    customer,
                    channel_id,
                    key=f"referral:{channel_id}:{referee.pk}:{side}",
                    source=EntrySource.REFERRAL,
                    points=points,
                    reason="Referral bonus" + (" (welcome)" if side == "referee" else ""),
                    source_id=source_id,
                    channel_slug=channel_slug,
                    now=now,
                )
            )
        if not any(r.awarded for r in results):
            # Nothing to credit still marks the referee as referred (no second referrer).
            pass
    return results[0], results[1]


def award_birthdays(*, today: date | None = None) -> int:
    """Daily: a birthday bonus for customers whose metadata says today is their birthday
    (``YYYY-MM-DD`` or ``MM-DD``; 29 February counts on 28 February in other years)."""
    now = timezone.now()
    today = today or now.date()
    awarded = 0
    accounts = LoyaltyAccount.objects.select_related("customer").filter(
        customer__erased_at__isnull=True, customer__saleor_user_id__isnull=False
    )
    for account in accounts.order_by("pk").iterator(chunk_size=500):
        config = program_config(account.channel_id, account.channel_slug)
        if not config.enabled or config.birthday_bonus <= 0:
            continue
        birthday = parse_birthday(
            (account.customer.metadata or {}).get(config.birthday_metadata_key)
        )
        if birthday is None or not _is_birthday(birthday, today):
            continue
        result = _bonus(
            account.customer,
            account.channel_id,
            key=f"birthday:{account.pk}:{today.year}",
            source=EntrySource.BIRTHDAY,
            points=config.birthday_bonus,
            reason="Birthday bonus",
            channel_slug=account.channel_slug,
            now=now,
        )
        awarded += int(result.awarded)
    return awarded


def parse_birthday(value: object) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lstrip("-")
    parts = text.split("-")
    try:
        if len(parts) == 3:
            parsed = date(int(parts[0]), int(parts[1]), int(parts[2]))
            return parsed.month, parsed.day
        if len(parts) == 2:
            month, day = int(parts[0]), int(parts[1])
            date(2000, month, day)  # validates (2000 is a leap year)
            return month, day
    except ValueError:
        return None
    return None


def _is_birthday(birthday: tuple[int, int], today: date) -> bool:
    month, day = birthday
    if (month, day) == (2, 29):
        try:
            date(today.year, 2, 29)
        except ValueError:
            return (today.month, today.day) == (2, 28)
    return (today.month, today.day) == (month, day)


def adjust_points(
    *,
    customer: Customer,
    channel_id: str,
    points: int,
    reason: str,
    staff_user_id: str = "",
    idempotency_key: str = "",
    channel_slug: str = "",
    allow_negative: bool = False,
    bonus: bool = False,
    now: datetime | None = None,
) -> LedgerEntry:
    """Staff correction (+ or -) or custom bonus (``bonus=True``, + only). A retried request
    with the same ``idempotency_key`` returns the original entry instead of posting twice."""
    _require_registered(customer)
    if not reason or not reason.strip():
        raise LoyaltyError(LoyaltyErrorCode.REQUIRED, "reason", "Give a reason for the adjustment.")
    if points == 0:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, "points", "Points must not be zero.")
    if bonus and points < 0:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, "points", "A bonus must be positive.")
    config = _channel_config(channel_id, channel_slug)
    now = now or timezone.now()
    key = f"staff:{idempotency_key}" if idempotency_key else ""
    with transaction.atomic():
        account, created = lock_account(customer, channel_id, channel_slug)
        if key:
            existing = LedgerEntry.objects.filter(idempotency_key=key).first()
            if existing is not None:
                if existing.account_id != account.pk or existing.points != points:
                    raise LoyaltyError(
                        LoyaltyErrorCode.DUPLICATE,
                        "idempotency_key",
                        "This idempotency key was used for a different adjustment.",
                    )
                return existing
        key = key or f"staff:{account.pk}:{LedgerEntry.objects.filter(account=account).count()}"
        work = Posting(account, config, now)
        if created:
            _signup_bonus(work)
        if points > 0:
            _, entry = work.credit(
                key=key,
                source=EntrySource.STAFF,
                points=points,
                kind=EntryKind.BONUS if bonus else EntryKind.ADJUST,
                reason=reason.strip(),
                staff_user_id=staff_user_id,
            )
        else:
            debit = -points
            if debit > account.balance and not allow_negative:
                raise LoyaltyError(
                    LoyaltyErrorCode.INSUFFICIENT_POINTS,
                    "points",
                    f"The balance is {account.balance} points; cannot take {debit}.",
                )
            entry = work.post(
                kind=EntryKind.ADJUST,
                source=EntrySource.STAFF,
                key=key,
                points=points,
                reason=reason.strip(),
                staff_user_id=staff_user_id,
            )
            shortfall = debit - work.consume(debit, entry)
            account.debt += shortfall
        work.finish()
    return entry


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
    now = now or timezone.now()
    config = program_config(account.channel_id, account.channel_slug)
    histories, _ = order_histories([account.customer_id])
    book = _Book(histories.get((account.customer_id, account.channel_id), []), config)
    status = book.status(now)
    tier = config.tier(account.tier) or status.tier
    days = config.expiry_warning_days if expiring_within_days is None else expiring_within_days
    horizon = now + timezone.timedelta(days=days)
    expiring = [
        ExpiringPoints(points=row["points"], expires_at=row["expires_at"])
        for row in PointLot.objects.filter(
            account=account, status=LotStatus.ACTIVE, remaining__gt=0, expires_at__lte=horizon
        )
        .values("expires_at")
        .annotate(points=Sum("remaining"))
        .order_by("expires_at")
    ]
    value = (Decimal(max(account.balance, 0)) * config.redemption_rate).quantize(Decimal("0.01"))
    return AccountView(
        account_id=account.pk,
        channel_id=account.channel_id,
        channel_slug=account.channel_slug,
        currency=account.currency,
        balance=account.balance,
        pending=account.pending,
        debt=account.debt,
        lifetime_earned=account.lifetime_earned,
        lifetime_redeemed=account.lifetime_redeemed,
        tier=tier,
        tier_metric=status.metric,
        tier_held_until=status.held_until,
        next_tier=status.next_tier,
        to_next_tier=status.to_next,
        progress=status.progress,
        balance_value=value,
        expiring=expiring,
    )


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
