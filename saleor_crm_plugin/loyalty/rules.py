"""Pure earning and reversal arithmetic (no ORM), so every rounding decision is unit-tested.

Points are whole numbers. Reversals are computed from the order's *cumulative* refunded share,
never refund by refund, so rounding cannot drift: after any sequence of partial refunds the
reversed points equal ``round(points * refunded / paid)``, and a full refund reverses exactly all.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal

from saleor_crm_plugin.loyalty.config import ProgramConfig

_ROUNDING = {"down": ROUND_DOWN, "half_up": ROUND_HALF_UP, "up": ROUND_CEILING}
ZERO = Decimal(0)
# Order statuses after which an order earns nothing (kept in sync with customers.models).
VOID_STATUSES = frozenset({"DRAFT", "CANCELED", "EXPIRED"})


@dataclass(frozen=True)
class OrderFacts:
    """What the earning rules need from an order (read from the customer projection)."""

    status: str
    total_gross: Decimal | None
    total_net: Decimal | None
    shipping_gross: Decimal | None
    total_charged: Decimal  # Saleor's totalCharged: already net of refunds
    total_refunded: Decimal
    cancelled: bool = False

    @property
    def paid_original(self) -> Decimal:
        """What the shopper paid before any refund."""
        return self.total_charged + self.total_refunded

    @property
    def fully_reversed(self) -> bool:
        """Cancelled, or everything paid has been refunded."""
        if self.cancelled or self.status in VOID_STATUSES:
            return True
        return self.total_refunded > 0 and self.total_charged <= 0

    @property
    def refunded_share(self) -> Decimal:
        if self.fully_reversed:
            return Decimal(1)
        paid = self.paid_original
        if paid <= 0 or self.total_refunded <= 0:
            return ZERO
        return min(Decimal(1), self.total_refunded / paid)


def eligible_amount(facts: OrderFacts, config: ProgramConfig) -> Decimal:
    """The money that earns points: paid, without shipping and tax unless configured otherwise.

    Tax is removed in proportion (net/gross of the order total), which is exact for a single rate
    and a fair split for mixed rates. Never more than what was actually paid."""
    paid = facts.paid_original
    if paid <= 0:
        return ZERO
    total = facts.total_gross if facts.total_gross is not None else paid
    amount = total
    if config.exclude_shipping and facts.shipping_gross:
        amount -= facts.shipping_gross
    if config.exclude_tax and facts.total_net is not None and total > 0:
        amount = amount * facts.total_net / total
    amount = min(amount, paid)
    return max(amount, ZERO)


def to_points(value: Decimal, rounding: str) -> int:
    return int(value.to_integral_value(rounding=_ROUNDING[rounding]))


def order_points(
    facts: OrderFacts, config: ProgramConfig, multiplier: Decimal = Decimal(1)
) -> tuple[int, int]:
    """``(base points, points with the tier multiplier)`` the order earns before refunds."""
    return points_of(eligible_amount(facts, config), config, multiplier)


def points_of(
    amount: Decimal, config: ProgramConfig, multiplier: Decimal = Decimal(1)
) -> tuple[int, int]:
    """``order_points`` of an order whose ``eligible_amount`` is ``amount``: a pass over an
    account asks an order's points several times (does it earn, its lot, its tier value),
    and the amount, most of the arithmetic, is the same each time."""
    if amount <= 0 or amount < config.min_order_amount:
        return 0, 0
    base = to_points(amount * config.points_per_unit, config.rounding)
    return base, to_points(amount * config.points_per_unit * multiplier, config.rounding)


def reversal_target(points: int, facts: OrderFacts, *, proportional: bool) -> int:
    """How many of a lot's points must be reversed given the order's state now."""
    if points <= 0:
        return 0
    if facts.fully_reversed:
        return points
    if not proportional:
        return 0
    share = facts.refunded_share
    return min(points, to_points(Decimal(points) * share, "half_up"))


def spend_after_refunds(facts: OrderFacts, config: ProgramConfig) -> Decimal:
    """Spend an order contributes to tier qualification."""
    if facts.fully_reversed:
        return ZERO
    return eligible_amount(facts, config) * (1 - facts.refunded_share)


def spend_of(facts: OrderFacts, amount: Decimal) -> Decimal:
    """``spend_after_refunds`` of an order whose ``eligible_amount`` is ``amount``."""
    if facts.fully_reversed:
        return ZERO
    return amount * (1 - facts.refunded_share)


def add_months(at: datetime, months: int) -> datetime:
    month_index = at.month - 1 + months
    year = at.year + month_index // 12
    month = month_index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def confirm_after(fulfilled_at: datetime | None, config: ProgramConfig) -> datetime | None:
    if fulfilled_at is None:
        return None
    window = _WINDOWS.get(config.return_window_days)
    if window is None:
        window = _WINDOWS[config.return_window_days] = timedelta(days=config.return_window_days)
    return fulfilled_at + window


# ``timedelta(days=n)`` by ``n``: asked for every order lot of every pass (a return window is a
# setting, so a handful of values at most; an ``int`` key makes the same value each time).
_WINDOWS: dict[int, timedelta] = {}
