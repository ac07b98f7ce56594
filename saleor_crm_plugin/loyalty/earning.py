"""Earning from orders: the event handler, replays, confirmation and tier evaluation.

Order points are *reconciled*, not incremented: each time an order event is handled, the
order's lots are compared with what the order (as the customer projection now knows it) should
have earned, reversed and confirmed, and only the difference is posted. So a replayed event
posts nothing, and events arriving in any order converge to the same lots and balances.
Everything runs inside the caller's transaction and locks the account rows first.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from saleor_crm_plugin.core.bulk import InArray, any_of
from saleor_crm_plugin.core.rows import RowReader, select_rows
from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.events.types import CrmEvent, EventKind
from saleor_crm_plugin.loyalty.config import ProgramConfig, program_config
from saleor_crm_plugin.loyalty.ledger import (
    Posting,
    account_values,
    customer_stub,
    flush,
    lock_accounts,
)
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    EntrySource,
    LotStatus,
    LoyaltyAccount,
    PointLot,
    TierChange,
)
from saleor_crm_plugin.loyalty.rules import (
    OrderFacts,
    confirm_after,
    eligible_amount,
    order_points,
    points_of,
    reversal_target,
    spend_of,
)
from saleor_crm_plugin.loyalty.tiers import TierStatus, held_tier, tier_at

logger = logging.getLogger(__name__)
_LOTS = RowReader(PointLot)

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


_new_object = object.__new__


def _row(values: Sequence[object]) -> OrderRow:
    """``OrderRow(..., facts=OrderFacts(...))`` of one history row, without the frozen
    dataclasses' ``__init__`` (an ``object.__setattr__`` per field): every order of every
    customer of a batch is read each batch, thousands of rows whose two objects cost more
    than the arithmetic done with them. The instances are the constructor's (same class,
    same attributes; ``tests/loyalty/test_earning.py`` compares them)."""
    (oid, created, fulfilled, cancelled, status, gross, net, shipping, charged, refunded) = values
    facts = _new_object(OrderFacts)
    facts.__dict__.update(
        status=status,
        total_gross=gross,
        total_net=net,
        shipping_gross=shipping,
        total_charged=charged,
        total_refunded=refunded,
        cancelled=cancelled is not None,
    )
    row = _new_object(OrderRow)
    row.__dict__.update(order_id=oid, created_at=created, fulfilled_at=fulfilled, facts=facts)
    return row


def order_histories(
    customer_ids: Iterable[int],
) -> tuple[dict[tuple[int, str], list[OrderRow]], set[int]]:
    """Every order of these customers per (customer, channel), oldest first, and which of the
    customers take part (registered, not erased) - one query."""
    histories, members = _order_histories(customer_ids)
    return histories, set(members)


def _order_histories(
    customer_ids: Iterable[int],
) -> tuple[dict[tuple[int, str], list[OrderRow]], dict[int, str]]:
    """``order_histories`` with the members' Saleor user ids, which is all the postings read
    of the customer: ``lock_accounts`` is handed them instead of joining the customer."""
    histories: dict[tuple[int, str], list[OrderRow]] = defaultdict(list)
    members: dict[int, str] = {}
    rows: Iterable[Sequence[Any]]
    if _RAW_HISTORIES and connection.vendor == "postgresql":
        where, params = any_of("o.customer_id", list(customer_ids), "bigint")
        rows = select_rows(_history_statement(where), params)
    else:
        rows = (
            Order.objects.filter(InArray(F("customer_id"), customer_ids))
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
            members[values[0]] = values[2]
    return histories, members


# The histories' statement written out (PostgreSQL): the queryset above, whose values every
# batch reads for every customer it touches, cost more in Django's query building and
# iteration (~45 k instructions per drained event) than in reading the rows. Same columns,
# join, filter and order; read by ``select_rows`` as the queryset's cursor reads them (text
# ``numeric``, the session's time zone). False: the queryset (tests compare the two).
_RAW_HISTORIES = True
_HISTORY_STATEMENTS: dict[str, str] = {}


def _history_statement(where: str) -> str:
    statement = _HISTORY_STATEMENTS.get(where)
    if statement is None:
        quote = connection.ops.quote_name
        order, customer = Order._meta, Customer._meta
        names = ", ".join(f"o.{quote(order.get_field(name).column)}" for name in _HISTORY_FIELDS)
        statement = _HISTORY_STATEMENTS[where] = (
            f"SELECT o.{quote(order.get_field('customer').column)}, "
            f"o.{quote(order.get_field('channel_id').column)}, "
            f"c.{quote(customer.get_field('saleor_user_id').column)}, "
            f"c.{quote(customer.get_field('erased_at').column)}, {names} "
            f"FROM {quote(order.db_table)} o LEFT OUTER JOIN {quote(customer.db_table)} c "
            f"ON o.{quote(order.get_field('customer').column)} = c.{quote(customer.pk.column)} "
            f"WHERE {where} ORDER BY o.{quote(order.get_field('customer').column)} ASC, "
            f"o.{quote(order.get_field('channel_id').column)} ASC, "
            f"o.{quote(order.get_field('created_at').column)} ASC, "
            f"o.{quote(order.get_field('saleor_order_id').column)} ASC"
        )
    return statement


class _Book:
    """The order history of one account plus memoised tier arithmetic over it.

    Each order's ``eligible_amount`` is computed once (``amount``): whether it earns, its
    lot's points and its tier value were three computations of it per touched order. The
    tier values (``contributions``) are computed on first use, so the book of an account
    that is not locked (nothing to open) computes none."""

    def __init__(self, rows: list[OrderRow], config: ProgramConfig) -> None:
        self.rows = rows
        self.config = config
        self.by_id = {row.order_id: row for row in rows}
        self._contributions: list[tuple[datetime, Decimal]] | None = None
        self._amounts: dict[int, Decimal] = {}
        self._multipliers: dict[str, Decimal] = {}

    @property
    def contributions(self) -> list[tuple[datetime, Decimal]]:
        if self._contributions is None:
            self._contributions = [(row.created_at, self._value(row)) for row in self.rows]
        return self._contributions

    def amount(self, row: OrderRow) -> Decimal:
        """``eligible_amount`` of one of the book's rows (by identity: the rows live as long
        as the book)."""
        amount = self._amounts.get(id(row))
        if amount is None:
            amount = self._amounts[id(row)] = eligible_amount(row.facts, self.config)
        return amount

    def points(self, row: OrderRow, multiplier: Decimal = Decimal(1)) -> tuple[int, int]:
        """``order_points(row.facts, config, multiplier)``."""
        return points_of(self.amount(row), self.config, multiplier)

    def earns(self, row: OrderRow) -> bool:
        """``_earns(row, config)``."""
        base, _ = points_of(self.amount(row), self.config)
        return base > 0 and not row.facts.fully_reversed

    def _value(self, row: OrderRow) -> Decimal:
        if self.config.tier_basis == "points":
            base, _ = self.points(row)
            return Decimal(base) - Decimal(reversal_target(base, row.facts, proportional=True))
        return spend_of(row.facts, self.amount(row))

    def multiplier(self, row: OrderRow) -> Decimal:
        """The multiplier of the tier held just before the order was placed, from the other
        orders: a function of history, so the order events arrive in does not matter."""
        cached = self._multipliers.get(row.order_id)
        if cached is None:
            if len(self.config.tiers) == 1:
                cached = self.config.tiers[0].multiplier
            else:
                before = [(t, v) for t, v in self.contributions if t < row.created_at]
                if before:
                    cached = held_tier(row.created_at, before, self.config)[0].multiplier
                else:
                    cached = _first_multiplier(self.config, row.created_at)
            self._multipliers[row.order_id] = cached
        return cached

    def status(self, at: datetime) -> TierStatus:
        return tier_at(at, self.contributions, self.config)

    def first_earning(self) -> OrderRow | None:
        return next((row for row in self.rows if self.earns(row)), None)


def _earns(row: OrderRow, config: ProgramConfig) -> bool:
    base, _ = order_points(row.facts, config)
    return base > 0 and not row.facts.fully_reversed


# ``tier_at(at, [], config).tier.multiplier`` by config (kept with it, compared by identity):
# with no contribution the metric is zero at every instant, so the tier held is the same for
# every ``at`` in every period kind, and a customer's first order asked it in full each time.
_FIRST_MULTIPLIERS: dict[int, tuple[ProgramConfig, Decimal]] = {}


def _first_multiplier(config: ProgramConfig, at: datetime) -> Decimal:
    known = _FIRST_MULTIPLIERS.get(id(config))
    if known is not None and known[0] is config:
        return known[1]
    if len(_FIRST_MULTIPLIERS) >= 64:
        _FIRST_MULTIPLIERS.clear()
    multiplier = tier_at(at, [], config).tier.multiplier
    _FIRST_MULTIPLIERS[id(config)] = (config, multiplier)
    return multiplier


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


def handle_events(events: Sequence[CrmEvent]) -> None:
    """The domain handler for a whole inbox batch: the same reconciliation as
    ``handle_event``, through the set-based ``replay_orders`` (constant queries per chunk of
    accounts instead of a few per event)."""
    order_ids = {e.order.saleor_order_id for e in events if e.order is not None}
    user_ids = sorted(
        {
            e.customer.saleor_user_id
            for e in events
            if e.order is None and e.customer is not None and e.kind != EventKind.CUSTOMER_DELETED
        }
    )
    if user_ids:
        # ``sync_customer`` for every customer event of the batch, in one query and the same
        # replay as the batch's orders: reconciling an order is idempotent, so reconciling the
        # union once ends where reconciling the orders, then each customer's, would.
        order_ids.update(unrewarded_orders(user_ids))
    if order_ids:
        replay_orders(sorted(order_ids))


def unrewarded_orders(user_ids: Sequence[str]) -> list[str]:
    """Orders of these registered, not erased customers that collected money but have no lot
    in any of the customer's accounts (what ``sync_customer`` replays), for many customers."""
    known = PointLot.objects.filter(
        account__customer_id=OuterRef("customer_id"), order_id=OuterRef("saleor_order_id")
    )
    return list(
        Order.objects.filter(
            InArray(F("customer__saleor_user_id"), user_ids),
            customer__erased_at__isnull=True,
            total_charged__gt=0,
        )
        .exclude(Exists(known))
        .values_list("saleor_order_id", flat=True)
    )


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
        orders = orders.filter(InArray(F("saleor_order_id"), order_ids))
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
        histories, members = _order_histories({key[0] for key in by_account})
        configs = {}
        # One program per channel for the whole pass: ``program_config`` keys its memo on
        # every settings layer encoded as JSON, a few per cent of the pass when run per account.
        programs: dict[tuple[str, str], ProgramConfig] = {}
        for key, (slug, _, _) in by_account.items():
            if key[0] in members:
                config = programs.get((key[1], slug))
                if config is None:
                    config = programs[(key[1], slug)] = program_config(key[1], slug)
                if config.enabled:
                    configs[key] = config
        if not configs:
            return []
        wanted = {}
        books = {}
        for key, config in configs.items():
            slug, currency, touched = by_account[key]
            book = books[key] = _Book(histories.get(key, []), config)
            history = book.by_id
            opens = not touch_only and any(
                oid in history and book.earns(history[oid]) for oid in touched
            )
            wanted[key] = ((key[0], key[1], slug, currency), opens)
        customers = {key[0]: customer_stub(key[0], members[key[0]]) for key in configs}
        accounts, created = lock_accounts(wanted, customers)
        lots: dict[int, list[PointLot]] = defaultdict(list)
        old_accounts = [a.pk for key, a in accounts.items() if key not in created]
        if old_accounts:
            # Every lot of every touched account, each batch: read without the ORM's per-row
            # constructor (same columns, converters and model instances, see core/rows.py).
            where, params = any_of("t.account_id", old_accounts, "bigint")
            for lot in _LOTS.fetch(where, params, order_by="t.id"):
                lots[lot.account_id].append(lot)
        postings = []
        for key, account in accounts.items():
            config = configs[key]
            # ``lock_accounts`` has just read (or created) the row: what it holds is stored.
            work = Posting(
                account,
                config,
                now,
                lots_loaded=lots.get(account.pk, []),
                stored=account_values(account),
            )
            if key in created:
                _signup_bonus(work)
            book = books[key]
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
        if row is None or f"order:{order_id}" in keys or not book.earns(row):
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
    base, points = book.points(row, multiplier)
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
            base, points = book.points(row, multiplier)
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


def _evaluate_tier(work: Posting, book: _Book, reason: str = "order") -> None:
    tier, metric = held_tier(work.now, book.contributions, book.config)
    account = work.account
    if account.tier != tier.code:
        work.tier_change(
            from_tier=account.tier,
            to_tier=tier.code,
            metric=metric,
            reason=reason,
            changed_at=work.now,
        )
        account.tier = tier.code
        account.tier_since = work.now


def lot_exists(key: str) -> bool:
    return PointLot.objects.filter(key=key).exists()


# -- periodic work ---------------------------------------------------------------------------


def confirm_due(*, now: datetime | None = None, batch: int = 500) -> int:
    """Confirm pending points whose return window has closed (beat task), ``batch`` accounts
    per transaction. Each account is reconciled against its orders, so a refund that arrived
    meanwhile is honoured first. Walks the accounts by id, so lots that legitimately stay
    pending (a return on its way) cannot make it loop. Returns the accounts reconciled."""
    now = now or timezone.now()
    due = LoyaltyAccount.objects.filter(
        pk__in=PointLot.objects.filter(status=LotStatus.PENDING, confirm_after__lte=now).values(
            "account_id"
        )
    ).order_by("pk")
    done = 0
    last = 0
    while True:
        accounts = list(
            due.filter(pk__gt=last).values_list(
                "pk", "customer_id", "channel_id", "channel_slug", "currency"
            )[:batch]
        )
        if not accounts:
            return done
        _process([(*account[1:], "") for account in accounts], now=now, touch_only=True)
        done += len(accounts)
        last = accounts[-1][0]


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
