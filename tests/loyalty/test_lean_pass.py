"""The loyalty pass's lean paths against the old ones, on generated order histories.

Each scenario feeds random order lifecycles (payments, fulfilments at several distances from
``now``, partial and full refunds, cancellations, returns) for a few customers through the
projection, reconciling the touched orders chunk by chunk as an inbox batch does (with
confirmation and nightly tier runs in between), once with this branch's code and once with
the old paths forced, and compares every stored loyalty row (ids replaced by natural keys).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.events.types import EventKind
from saleor_crm_plugin.loyalty import earning, ledger
from saleor_crm_plugin.loyalty.models import (
    LedgerEntry,
    LotConsumption,
    LoyaltyAccount,
    PointLot,
    TierChange,
)
from saleor_crm_plugin.loyalty.rules import (
    add_months,
    order_points,
    reversal_target,
    spend_after_refunds,
)
from saleor_crm_plugin.loyalty.tiers import tier_at
from tests.loyalty.builders import customer_event, days, order_event
from tests.loyalty.test_earning import reset_loyalty_and_projection

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

CONFIGS = {
    "default": {},
    "bonuses": {"first_order_bonus": 10, "signup_bonus": 5, "tier_period": "calendar_year"},
    "points-lifetime": {
        "tier_basis": "points",
        "tier_period": "lifetime",
        "tiers": [
            {"code": "a", "threshold": 0, "multiplier": 1},
            {"code": "b", "threshold": 60, "multiplier": "1.5"},
            {"code": "c", "threshold": 150, "multiplier": 2},
        ],
    },
    "clawback-inactivity": {
        "negative_balance": "clawback",
        "expiry_mode": "inactivity",
        "rounding": "half_up",
        "exclude_tax": False,
        "tiers": [
            {"code": "x", "threshold": 0, "multiplier": 1},
            {"code": "y", "threshold": 0, "multiplier": "1.2"},
            {"code": "z", "threshold": 90, "multiplier": "1.75"},
        ],
    },
}


def _lifecycle(rng: random.Random, n: int, user: int) -> list[Any]:
    """One order's events as Saleor might send them (the projection keeps the newest)."""
    created = NOW - days(rng.choice([400, 200, 45, 31, 20, 3, 1]))
    total = Decimal(rng.choice(["15", "80", "120", "333.33", "1000", "2500"]))
    events = [
        order_event(n, EventKind.ORDER_CREATED, user=user, created=created, total=str(total),
                    net=str(total * Decimal("0.8")), paid=False),
        order_event(n, EventKind.ORDER_FULLY_PAID, user=user, created=created,
                    updated=created + days(0.1), total=str(total),
                    net=str(total * Decimal("0.8"))),
    ]  # fmt: skip
    step = 0.2
    fulfilled = None
    refunded = Decimal(0)
    status = "UNFULFILLED"
    for _ in range(rng.randint(0, 4)):
        step += 0.5
        what = rng.choice(["fulfil", "refund", "refund", "cancel", "return"])
        kind = EventKind.ORDER_UPDATED
        cancelled = None
        if what == "fulfil":
            fulfilled = created + days(step)
            status, kind = "FULFILLED", EventKind.ORDER_FULFILLED
        elif what == "refund":
            refunded = min(total, refunded + Decimal(rng.choice(["5", "30", "60.5", "1000"])))
            kind = EventKind.ORDER_REFUNDED
        elif what == "cancel":
            status, kind, cancelled = "CANCELED", EventKind.ORDER_CANCELLED, created + days(step)
        else:
            status = "RETURNED"
        events.append(
            order_event(n, kind, user=user, created=created, updated=created + days(step),
                        total=str(total), net=str(total * Decimal("0.8")), status=status,
                        fulfilled_at=fulfilled, refunded=str(refunded), cancelled_at=cancelled)
        )  # fmt: skip
    return events


def _scenario(seed: int) -> list[list[Any]]:
    rng = random.Random(seed)
    users = list(range(1, rng.randint(3, 7)))
    streams = [[customer_event(user, at=NOW - days(500))] for user in users]
    for n in range(rng.randint(4, 14)):
        user = rng.choice(users)
        streams[users.index(user)].extend(_lifecycle(rng, n, user))
    # Interleave the customers' streams, keeping each one's order, in chunks (batches).
    events = []
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        events.append(stream.pop(0))
    chunks = []
    while events:
        size = rng.randint(1, 6)
        chunks.append(events[:size])
        events = events[size:]
    return chunks


def _run(chunks: list[list[Any]], seed: int) -> None:
    rng = random.Random(seed)
    for i, chunk in enumerate(chunks):
        now = NOW + days(i)
        for event in chunk:
            projection.apply_event(event)
        with transaction.atomic():
            ids = sorted({e.order.saleor_order_id for e in chunk if e.order is not None})
            earning.replay_orders(ids, now=now)
        if rng.random() < 0.2:
            earning.confirm_due(now=now + days(rng.choice([1, 25, 40])), batch=2)
        if rng.random() < 0.1:
            earning.evaluate_tiers(now=now + days(rng.choice([1, 200, 400])), chunk=3)
    # a replay of everything changes nothing more
    earning.replay_orders(None, now=NOW + days(len(chunks)))


def _dump() -> dict[str, Any]:
    accounts = {
        a.pk: (a.customer.saleor_user_id, a.channel_id)
        for a in LoyaltyAccount.objects.select_related("customer")
    }

    customers = dict(Customer.objects.values_list("pk", "saleor_user_id"))

    def entry_key(text: str) -> str:
        """Bonus keys carry the account's or the customer's id: named by the Saleor user."""
        prefix, _, rest = text.partition(":")
        number, _, tail = rest.partition(":")
        if prefix == "first-order":
            return f"{prefix}:{accounts[int(number)]}:{tail}"
        if prefix == "signup":
            return f"{prefix}:{customers[int(number)]}:{tail}"
        return text

    def key(lot: PointLot | None) -> str:
        return "-" if lot is None else entry_key(lot.key)

    lots = {lot.pk: lot for lot in PointLot.objects.all()}
    skip = {"id", "account_id", "lot_id", "entry_id", "created_at", "updated_at", "customer_id"}

    def columns(row: Any) -> tuple[Any, ...]:
        return tuple(
            (f.attname, getattr(row, f.attname))
            for f in type(row)._meta.concrete_fields
            if f.attname not in skip and f.attname != "key" and f.attname != "idempotency_key"
        )

    return {
        "accounts": sorted(
            (accounts[a.pk], columns(a)) for a in LoyaltyAccount.objects.order_by("pk")
        ),
        "lots": [
            (accounts[lot.account_id], key(lot), columns(lot))
            for lot in PointLot.objects.order_by("pk")
        ],
        "entries": [
            (
                accounts[e.account_id],
                key(lots.get(e.lot_id)),
                entry_key(e.idempotency_key),
                e.created_at,
                columns(e),
            )
            for e in LedgerEntry.objects.order_by("pk")
        ],
        "consumptions": [
            (entry_key(c.entry.idempotency_key), key(lots[c.lot_id]), c.points)
            for c in LotConsumption.objects.select_related("entry").order_by("pk")
        ],
        "tier_changes": [
            (accounts[t.account_id], columns(t)) for t in TierChange.objects.order_by("pk")
        ],
    }


def _old_relate(row: Any, fk: Any, value: Any) -> None:
    setattr(row, fk.name, value)


class _OldBook:
    """``earning._Book`` as it was (verbatim), with the two methods the pass now asks
    answered by the old functions they replace (``_earns``, ``order_points``)."""

    def __init__(self, rows: list[Any], config: Any) -> None:
        self.rows = rows
        self.config = config
        self.by_id = {row.order_id: row for row in rows}
        self.contributions = [(row.created_at, self._value(row)) for row in rows]
        self._multipliers: dict[str, Decimal] = {}

    def _value(self, row: Any) -> Decimal:
        if self.config.tier_basis == "points":
            base, _ = order_points(row.facts, self.config)
            return Decimal(base) - Decimal(reversal_target(base, row.facts, proportional=True))
        return spend_after_refunds(row.facts, self.config)

    def multiplier(self, row: Any) -> Decimal:
        cached = self._multipliers.get(row.order_id)
        if cached is None:
            if len(self.config.tiers) == 1:
                cached = self.config.tiers[0].multiplier
            else:
                before = [(t, v) for t, v in self.contributions if t < row.created_at]
                cached = tier_at(row.created_at, before, self.config).tier.multiplier
            self._multipliers[row.order_id] = cached
        return cached

    def status(self, at: datetime) -> Any:
        return tier_at(at, self.contributions, self.config)

    def first_earning(self) -> Any:
        return next((row for row in self.rows if _old_earns(row, self.config)), None)

    def earns(self, row: Any) -> bool:
        return _old_earns(row, self.config)

    def points(self, row: Any, multiplier: Decimal = Decimal(1)) -> tuple[int, int]:
        return order_points(row.facts, self.config, multiplier)


def _old_earns(row: Any, config: Any) -> bool:
    base, _ = order_points(row.facts, config)
    return base > 0 and not row.facts.fully_reversed


def _old_confirm_after(fulfilled_at: datetime | None, config: Any) -> datetime | None:
    if fulfilled_at is None:
        return None
    return fulfilled_at + timedelta(days=config.return_window_days)


def _old_expiry_for_new_lot(self: Any) -> datetime | None:
    if not self.config.expiry_months:
        return None
    return add_months(self.now, self.config.expiry_months)


def _old_evaluate_tier(work: Any, book: Any, reason: str = "order") -> Any:
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


def _force_old_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(earning, "_evaluate_tier", _old_evaluate_tier)
    monkeypatch.setattr(ledger, "relate", _old_relate)
    monkeypatch.setattr(earning, "account_values", lambda account: None)
    monkeypatch.setattr(earning, "_Book", _OldBook)
    monkeypatch.setattr(earning, "_RAW_HISTORIES", False)
    monkeypatch.setattr(earning, "confirm_after", _old_confirm_after)
    monkeypatch.setattr(ledger.Posting, "expiry_for_new_lot", _old_expiry_for_new_lot)
    monkeypatch.setattr(ledger, "new_instance", lambda model, /, **values: model(**values))


@pytest.mark.django_db
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_lean_pass_stores_what_the_old_pass_stored(monkeypatch, config):
    with override_settings(CRM_LOYALTY=CONFIGS[config]):
        for seed in range(4):
            chunks = _scenario(seed * 31 + len(config))
            _run(chunks, seed)
            new = _dump()
            reset_loyalty_and_projection()
            with monkeypatch.context() as patch:
                _force_old_paths(patch)
                _run(chunks, seed)
            old = _dump()
            reset_loyalty_and_projection()
            assert new["lots"], "the scenario earned nothing"
            assert new == old


def _history_state(histories: dict[Any, list[Any]]) -> list[Any]:
    """Every row's and facts' attributes with their types, in order."""
    return [
        (key, [(row.__dict__.keys() - {"facts"}, [(repr(v), type(v)) for k, v in sorted(
            row.__dict__.items()) if k != "facts"], [(k, repr(v), type(v)) for k, v in sorted(
            row.facts.__dict__.items())]) for row in rows])
        for key, rows in sorted(histories.items())
    ]  # fmt: skip


@pytest.mark.django_db
def test_history_statement_reads_what_the_queryset_read(monkeypatch):
    """``_order_histories`` through its written statement and through the queryset, after
    generated scenarios (guests, several channels, erased customers, null totals)."""
    for seed in range(3):
        for chunk in _scenario(seed):
            for event in chunk:
                projection.apply_event(event)
    customers = list(Customer.objects.values_list("pk", flat=True))
    Customer.objects.filter(pk=customers[0]).update(erased_at=NOW)
    Customer.objects.filter(pk=customers[1]).update(saleor_user_id=None)
    from saleor_crm_plugin.customers.models import Order

    Order.objects.filter(pk__in=Order.objects.order_by("pk")[:3].values("pk")).update(
        total_gross=None, total_net=None, channel_id="other", fulfilled_at=None
    )
    for ids in ([*customers, 10**9], customers[:2], customers[1:], [10**9]):
        new = earning._order_histories(set(ids))
        with monkeypatch.context() as patch:
            patch.setattr(earning, "_RAW_HISTORIES", False)
            old = earning._order_histories(set(ids))
        assert _history_state(new[0]) == _history_state(old[0])
        assert new[1] == old[1]


@pytest.mark.django_db
def test_relate_leaves_what_the_descriptor_leaves():
    """Rows, values and their states after ``relate`` as after ``setattr``, for loaded, new and
    id-carrying values and None, on every foreign key the ledger sets."""
    from saleor_crm_plugin.core.rows import new_instance

    projection.apply_event(customer_event(1))
    created = LoyaltyAccount.objects.create(customer=Customer.objects.get(), channel_id="c")
    account = LoyaltyAccount.objects.get(pk=created.pk)
    links = [
        (PointLot, "account", lambda: account),
        (LedgerEntry, "account", lambda: account),
        (LedgerEntry, "lot", lambda: new_instance(PointLot, key="k", points=1)),
        (LedgerEntry, "lot", lambda: PointLot(pk=77, key="k", points=1)),
        (LedgerEntry, "lot", lambda: None),
        (LotConsumption, "entry", lambda: new_instance(LedgerEntry, idempotency_key="e")),
        (LotConsumption, "lot", lambda: new_instance(PointLot, key="k", points=1)),
        (TierChange, "account", lambda: account),
    ]

    def state(row: Any) -> tuple[Any, ...]:
        if row is None:
            return (None, None, None)
        values = {k: v for k, v in row.__dict__.items() if k != "_state"}
        return (values, row._state.db, row._state.adding)

    for model, name, make in links:
        fk = model._meta.get_field(name)
        for row_db in (None, "default"):
            new_row, old_row = new_instance(model), new_instance(model)
            new_row._state.db = old_row._state.db = row_db
            for name, value in old_row.__dict__.items():
                if isinstance(value, datetime):  # ``timezone.now`` defaults: made equal
                    new_row.__dict__[name] = value
            new_value, old_value = make(), make()
            ledger.relate(new_row, fk, new_value)
            _old_relate(old_row, fk, old_value)
            assert state(new_row) == state(old_row)
            assert fk.get_cached_value(new_row) is new_value
            assert fk.get_cached_value(old_row) is old_value
            assert state(new_value)[1:3] == state(old_value)[1:3]


@pytest.mark.parametrize("period", ["lifetime", "calendar_year", "rolling_12_months"])
def test_the_tier_of_an_empty_history_is_the_same_at_every_instant(period):
    """What ``_first_multiplier`` memoises: ``tier_at(at, [], config)``'s tier for any ``at``,
    over generated tier tables (thresholds of zero included, codes repeated)."""
    from saleor_crm_plugin.loyalty.config import ProgramConfig, TierRule

    rng = random.Random(period)
    for _ in range(300):
        tiers = tuple(
            TierRule(rng.choice("abc"), "n", Decimal(rng.choice([0, 0, 5, 100])),
                     Decimal(rng.choice(["1", "1.25", "2"])))
            for _ in range(rng.randint(1, 4))
        )  # fmt: skip
        config = ProgramConfig(tier_period=period, tiers=tiers)
        earning._FIRST_MULTIPLIERS.clear()
        first = earning._first_multiplier(config, NOW)
        for _ in range(5):
            at = NOW + days(rng.uniform(-3000, 3000))
            assert tier_at(at, [], config).tier.multiplier == first
            assert earning._first_multiplier(config, at) is first


@pytest.mark.parametrize("period", ["lifetime", "calendar_year", "rolling_12_months"])
def test_held_tier_is_tier_at_s_tier_and_metric(period):
    from saleor_crm_plugin.loyalty.config import ProgramConfig, TierRule
    from saleor_crm_plugin.loyalty.tiers import held_tier

    rng = random.Random(period)
    for _ in range(400):
        tiers = tuple(
            TierRule(rng.choice("abcd"), "n", Decimal(rng.choice([0, 0, 5, 100, 400])),
                     Decimal(rng.choice(["1", "1.25", "2"])))
            for _ in range(rng.randint(1, 4))
        )  # fmt: skip
        config = ProgramConfig(tier_period=period, tiers=tiers)
        history = sorted(
            (NOW - days(rng.uniform(-30, 900)), Decimal(rng.choice(["0", "12.5", "80", "300.10"])))
            for _ in range(rng.randint(0, 12))
        )
        at = NOW + days(rng.uniform(-400, 400))
        status = tier_at(at, history, config)
        tier, metric = held_tier(at, history, config)
        assert tier is status.tier
        assert (repr(metric), type(metric)) == (repr(status.metric), type(status.metric))
