"""Which tier a customer holds at an instant (pure; no ORM).

The tier is a *function of the order history*, not a counter stepped by events, which is what
makes it independent of event order and safe to recompute nightly. "No demotion before the
period ends" is part of that function:

* ``lifetime``: the tier of the lifetime metric (refunds can lower it, nothing else can).
* ``calendar_year``: the better of this year's tier and last full year's tier, so a tier reached
  in a year holds until the end of the next one.
* ``rolling_12_months``: the best tier qualified for at any moment of the last 12 months, so a
  tier holds for 12 months after the customer last qualified for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from saleor_crm_plugin.loyalty.config import ProgramConfig, TierRule

YEAR = timedelta(days=365)


@dataclass(frozen=True)
class TierStatus:
    tier: TierRule
    metric: Decimal  # spend or points in the current period
    next_tier: TierRule | None
    to_next: Decimal  # metric still needed for the next tier (0 at the top)
    held_until: datetime | None  # the tier is guaranteed until then (None: lifetime)

    @property
    def progress(self) -> Decimal:
        """0..1 towards the next tier (1 at the top tier)."""
        if self.next_tier is None or self.next_tier.threshold <= 0:
            return Decimal(1)
        return min(Decimal(1), self.metric / self.next_tier.threshold).quantize(Decimal("0.001"))


def qualified(metric: Decimal, tiers: Sequence[TierRule]) -> TierRule:
    best = tiers[0]
    for tier in tiers:
        if metric >= tier.threshold:
            best = tier
    return best


def _ranks(tiers: Sequence[TierRule]) -> dict[str, int]:
    """Each tier code's rank (its first position in ``tiers``), built once per evaluation:
    looking the rank up by scanning the list cost a generator per comparison, three per
    contribution of the rolling window (tens of thousands per inbox batch)."""
    ranks: dict[str, int] = {}
    for i, t in enumerate(tiers):
        ranks.setdefault(t.code, i)
    return ranks


def tier_at(
    at: datetime, history: Sequence[tuple[datetime, Decimal]], config: ProgramConfig
) -> TierStatus:
    """The tier held at ``at`` given ``(time, value)`` contributions (orders), sorted by time.
    Contributions after ``at`` are ignored."""
    held, metric, held_until = _held(at, history, config)
    above = [t for t in config.tiers if t.threshold > held.threshold]
    next_tier = above[0] if above else None
    to_next = max(Decimal(0), next_tier.threshold - metric) if next_tier else Decimal(0)
    return TierStatus(held, metric, next_tier, to_next, held_until)


def held_tier(
    at: datetime, history: Sequence[tuple[datetime, Decimal]], config: ProgramConfig
) -> tuple[TierRule, Decimal]:
    """``tier_at(...)``'s ``tier`` and ``metric`` alone: what the loyalty pass reads of it
    for every account it reconciles and every order it opens a lot for, without the next
    tier, the distance to it and the frozen ``TierStatus`` they would be built into."""
    held, metric, _ = _held(at, history, config)
    return held, metric


def _held(
    at: datetime, history: Sequence[tuple[datetime, Decimal]], config: ProgramConfig
) -> tuple[TierRule, Decimal, datetime | None]:
    tiers = config.tiers
    ranks = _ranks(tiers)
    points = [(t, v) for t, v in history if t <= at]
    if config.tier_period == "lifetime":
        metric = sum((v for _, v in points), Decimal(0))
        held, held_until = qualified(metric, tiers), None
    elif config.tier_period == "calendar_year":
        year_start = datetime(at.year, 1, 1, tzinfo=UTC)
        last_start = datetime(at.year - 1, 1, 1, tzinfo=UTC)
        metric = sum((v for t, v in points if t >= year_start), Decimal(0))
        last_year = sum((v for t, v in points if last_start <= t < year_start), Decimal(0))
        current, previous = qualified(metric, tiers), qualified(last_year, tiers)
        if ranks[current.code] > 0:
            held, held_until = current, datetime(at.year + 2, 1, 1, tzinfo=UTC)
        else:
            held, held_until = previous, datetime(at.year + 1, 1, 1, tzinfo=UTC)
        if ranks[previous.code] > ranks[held.code]:
            held, held_until = previous, datetime(at.year + 1, 1, 1, tzinfo=UTC)
    else:
        metric, held, held_until = _rolling(at, points, tiers, ranks)
    if ranks[held.code] == 0:
        held_until = None
    return held, metric, held_until


def _rolling(
    at: datetime,
    points: Sequence[tuple[datetime, Decimal]],
    tiers: Sequence[TierRule],
    ranks: dict[str, int],
) -> tuple[Decimal, TierRule, datetime | None]:
    """Sliding 365-day window sums evaluated at every contribution of the last year (the metric
    only rises at a contribution, so the maxima are there) and at ``at`` itself."""
    horizon = at - YEAR
    moments = [t for t, _ in points if t > horizon] + [at]
    best, best_at = tiers[0], None
    best_rank = ranks[best.code]
    window_start = 0
    total = Decimal(0)
    end = 0
    metric = Decimal(0)
    for moment in moments:
        while end < len(points) and points[end][0] <= moment:
            total += points[end][1]
            end += 1
        while window_start < end and points[window_start][0] <= moment - YEAR:
            total -= points[window_start][1]
            window_start += 1
        tier = qualified(total, tiers)
        rank = ranks[tier.code]
        if rank >= best_rank and rank > 0:
            best, best_at, best_rank = tier, moment, rank
        if moment == at:
            metric = total
    return metric, best, (best_at + YEAR) if best_at else None
