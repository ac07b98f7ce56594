"""Posting to the ledger. Everything here expects the account row to be locked
(``lock_account`` or ``lock_accounts``) by the caller's transaction: that lock serialises all
changes of one account (earning, redemption, expiry), so in-memory arithmetic on it is safe and
two redemptions can never both spend the same points.

A ``Posting`` is one unit of work on one account. It collects new lots, entries and lot
consumptions in memory and writes them with ``flush`` in a constant number of queries, so the
event handler costs a handful of queries per order and a replay of thousands of orders costs
the same handful per chunk.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, models, router, transaction

from saleor_crm_plugin.core.bulk import any_of, insert_ignoring_conflicts, insert_rows, update_rows
from saleor_crm_plugin.core.rows import RowReader, bare_instance, init_receivers, new_instance
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
    TierChange,
)
from saleor_crm_plugin.loyalty.rules import add_months

LOT_FIELDS = (
    "order_id",
    "source_id",
    "status",
    "points",
    "base_points",
    "multiplier",
    "reversed_points",
    "remaining",
    "revision",
    "earned_at",
    "confirm_after",
    "confirmed_at",
    "expires_at",
    "warned_at",
)
ACCOUNT_FIELDS = (
    "balance",
    "pending",
    "debt",
    "lifetime_earned",
    "lifetime_redeemed",
    "tier",
    "tier_since",
    "last_activity_at",
)
# The columns ``flush`` writes of an account, read as one tuple (what was read, what is now).
account_values = attrgetter(*ACCOUNT_FIELDS)


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
            _fill_channel(account, channel_slug, currency)
            account.customer = customer
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
            account.customer = customer
            return account, True
        except IntegrityError:
            continue
    raise RuntimeError(f"Could not lock the loyalty account of {customer.pk} in {channel_id}")


def _fill_channel(account: LoyaltyAccount, channel_slug: str, currency: str) -> None:
    changed = {}
    if channel_slug and account.channel_slug != channel_slug:
        account.channel_slug = changed["channel_slug"] = channel_slug
    if currency and not account.currency:
        account.currency = changed["currency"] = currency
    if changed:
        LoyaltyAccount.objects.filter(pk=account.pk).update(**changed)


# Postings read only who the customer is (write-back, signup bonus): its id, Saleor user id and
# erasure. Accounts are read without the customer join and given a customer carrying just
# those (the other columns deferred, loaded on first access as ``defer`` would): building the
# account and the customer through the ORM's join was a sixth of the loyalty pass.
_ACCOUNTS = RowReader(LoyaltyAccount)
_CUSTOMERS = RowReader(Customer)
_CUSTOMER_READ = frozenset({"id", "saleor_user_id", "erased_at"})


def customer_stub(customer_id: int, saleor_user_id: str | None, erased_at: Any = None) -> Customer:
    """A loaded ``Customer`` holding only what postings read (the rest deferred): what a
    caller that already read those columns (``order_histories``) hands ``lock_accounts``."""
    values = {"id": customer_id, "saleor_user_id": saleor_user_id, "erased_at": erased_at}
    if init_receivers(Customer):
        return Customer.from_db("default", list(values), list(values.values()))
    return bare_instance(Customer, values, "default")


def lock_accounts(
    wanted: dict[tuple[int, str], tuple[tuple[int, str, str, str], bool]],
    customers: Mapping[int, Customer] | None = None,
) -> tuple[dict[tuple[int, str], LoyaltyAccount], set[tuple[int, str]]]:
    """Lock the accounts ``{(customer_id, channel_id): ((customer_id, channel_id, slug,
    currency), create)}`` that exist, create the missing ones marked ``create``; returns the
    locked accounts by key and the keys that were created. ``customers`` (by id) are set as
    the accounts' customers; the ones it lacks are read in one query (id, Saleor user id and
    erasure only)."""
    if not wanted:
        return {}, set()

    def fetch(keys: Collection[tuple[int, str]]) -> dict[tuple[int, str], LoyaltyAccount]:
        customer_where, customer_params = any_of(
            "t.customer_id", sorted({key[0] for key in keys}), "bigint"
        )
        channel_where, channel_params = any_of(
            "t.channel_id", sorted({key[1] for key in keys}), "text"
        )
        rows = _ACCOUNTS.fetch(
            f"{customer_where} AND {channel_where}",
            [*customer_params, *channel_params],
            order_by="t.id",
            for_update=True,
        )
        return {
            (a.customer_id, a.channel_id): a for a in rows if (a.customer_id, a.channel_id) in keys
        }

    found = fetch(wanted)
    missing = {key for key, (_, create) in wanted.items() if create and key not in found}
    if missing:
        insert_ignoring_conflicts(
            LoyaltyAccount,
            [
                # ``new_instance``: what the constructor gives, without its per-field loop
                new_instance(
                    LoyaltyAccount,
                    customer_id=key[0],
                    channel_id=key[1],
                    channel_slug=wanted[key][0][2],
                    currency=wanted[key][0][3],
                )
                for key in sorted(missing)
            ],
        )
        # Only the new rows (or a concurrent creator's) need reading: the others are locked
        # and in hand already, and re-reading every account of the batch doubled this step.
        found.update(fetch(missing))
        found = dict(sorted(found.items(), key=lambda item: item[1].pk))  # as one read gave
    _attach_customers(found.values(), customers or {})
    for key, account in found.items():
        _fill_channel(account, wanted[key][0][2], wanted[key][0][3])
    return found, missing & set(found)


_CUSTOMER_FIELD = LoyaltyAccount._meta.get_field("customer")


def _attach_customers(accounts: Iterable[LoyaltyAccount], known: Mapping[int, Customer]) -> None:
    """Set each account's customer (cached as ``select_related`` caches it), from ``known``
    or else from one read of the missing ones."""
    accounts = list(accounts)
    lacking = sorted({a.customer_id for a in accounts if a.customer_id not in known})
    if lacking:
        where, params = any_of("t.id", lacking, "bigint")
        read = {c.pk: c for c in _CUSTOMERS.fetch(where, params, only=_CUSTOMER_READ)}
        known = {**known, **read}
    for account in accounts:
        _CUSTOMER_FIELD.set_cached_value(account, known[account.customer_id])


_last_expiry: tuple[datetime | None, int, datetime | None] = (None, 0, None)


@dataclass
class Posting:
    """One unit of work on a locked account; ``finish`` (or ``flush``) writes it."""

    account: LoyaltyAccount
    config: ProgramConfig
    now: datetime
    lots_loaded: list[PointLot] | None = None
    new_lots: list[PointLot] = field(default_factory=list)
    new_entries: list[LedgerEntry] = field(default_factory=list)
    consumptions: list[LotConsumption] = field(default_factory=list)
    tier_changes: list[TierChange] = field(default_factory=list)
    dirty_lots: dict[int, PointLot] = field(default_factory=dict)
    initial: tuple[int, int, str] = (0, 0, "")
    # ``account_values(account)`` as the account row stands in the database, when the caller
    # knows it (``earning._process`` reads it just after locking): ``flush`` then leaves out
    # the ``UPDATE`` of an account none of whose written columns changed. Most accounts of an
    # inbox batch change nothing (an order's event that moves no point); writing them back
    # unchanged cost Python an array element per column and PostgreSQL a new row version.
    # None (any other caller): always written, as before.
    stored: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        self.initial = (self.account.balance, self.account.pending, self.account.tier)

    @property
    def changed(self) -> bool:
        return self.initial != (self.account.balance, self.account.pending, self.account.tier)

    # -- lots ---------------------------------------------------------------------------------

    def all_lots(self) -> list[PointLot]:
        if self.lots_loaded is None:
            self.lots_loaded = list(PointLot.objects.filter(account=self.account).order_by("pk"))
        return self.lots_loaded + self.new_lots

    def has_lot(self, key: str) -> bool:
        return any(lot.key == key for lot in self.all_lots())

    def new_lot(self, **fields: Any) -> PointLot:
        if init_receivers(PointLot):
            lot = new_instance(PointLot, account=self.account, **fields)
        else:
            lot = new_instance(PointLot, **fields)
            relate(lot, _LOT_ACCOUNT, self.account)
        self.new_lots.append(lot)
        return lot

    def touch(self, lot: PointLot) -> None:
        if lot.pk is not None:
            self.dirty_lots[lot.pk] = lot

    # -- entries ------------------------------------------------------------------------------

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
        values = {
            "kind": kind,
            "source": source,
            "source_id": source_id,
            "points": points,
            "pending_points": pending,
            "reason": reason[:255],
            "idempotency_key": key,
            "staff_user_id": staff_user_id,
            "data": data or {},
            "created_at": self.now,
        }
        if init_receivers(LedgerEntry):
            entry = new_instance(LedgerEntry, account=self.account, lot=lot, **values)
        else:
            entry = new_instance(LedgerEntry, **values)
            relate(entry, _ENTRY_ACCOUNT, self.account)
            relate(entry, _ENTRY_LOT, lot)
        self.new_entries.append(entry)
        self.account.balance += points
        self.account.pending += pending
        if lot is not None:
            lot.revision += 1  # keys of later entries of the lot stay unique
            self.touch(lot)
        return entry

    def consumed(self, entry: LedgerEntry, lot: PointLot, points: int) -> None:
        if init_receivers(LotConsumption):
            row = new_instance(LotConsumption, entry=entry, lot=lot, points=points)
        else:
            row = new_instance(LotConsumption, points=points)
            relate(row, _CONSUMPTION_ENTRY, entry)
            relate(row, _CONSUMPTION_LOT, lot)
        self.consumptions.append(row)

    def tier_change(self, **fields: Any) -> None:
        if init_receivers(TierChange):
            row = new_instance(TierChange, account=self.account, **fields)
        else:
            row = new_instance(TierChange, **fields)
            relate(row, _TIER_CHANGE_ACCOUNT, self.account)
        self.tier_changes.append(row)

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
    ) -> tuple[PointLot, LedgerEntry]:
        """Spendable points right away (bonuses, staff credits): a lot plus its entry."""
        lot = self.new_lot(
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
        return lot, entry

    def expiry_for_new_lot(self) -> datetime | None:
        months = self.config.expiry_months
        if not months:
            return None
        # Every lot confirmed in a pass asks this with the pass's one ``now`` object: the last
        # answer is kept with that very object (identity, not equality: equal instants in
        # other zones fall in other months).
        global _last_expiry
        now, last_months, expires = _last_expiry
        if now is not self.now or last_months != months:
            expires = add_months(self.now, months)
            _last_expiry = (self.now, months, expires)
        return expires

    def pay_debt(self, lot: PointLot, entry: LedgerEntry) -> None:
        """Points reversed after they were spent are owed; new points cover them first."""
        if self.account.debt <= 0 or lot.remaining <= 0:
            return
        pay = min(self.account.debt, lot.remaining)
        lot.remaining -= pay
        self.account.debt -= pay
        if lot.remaining == 0:
            lot.status = LotStatus.SPENT
        self.consumed(entry, lot, pay)
        self.touch(lot)

    def available_lots(self, exclude: PointLot | None = None) -> list[PointLot]:
        """Spendable lots, first to expire first (never-expiring last, then oldest)."""
        lots = [
            lot
            for lot in self.all_lots()
            if lot.status == LotStatus.ACTIVE
            and lot.remaining > 0
            and (exclude is None or lot is not exclude)
            and (exclude is None or exclude.pk is None or lot.pk != exclude.pk)
        ]
        lots.sort(
            key=lambda lot: (
                lot.expires_at is None,
                lot.expires_at or self.now,
                lot.earned_at,
                lot.pk is None,
                lot.pk or 0,
            )
        )
        return lots

    def consume(self, points: int, entry: LedgerEntry, exclude: PointLot | None = None) -> int:
        """Take up to ``points`` from spendable lots; return how many were taken."""
        taken = 0
        for lot in self.available_lots(exclude):
            if taken >= points:
                break
            take = min(lot.remaining, points - taken)
            lot.remaining -= take
            if lot.remaining == 0:
                lot.status = LotStatus.SPENT
            taken += take
            self.consumed(entry, lot, take)
            self.touch(lot)
        return taken

    def activity(self) -> None:
        self.account.last_activity_at = self.now
        if self.config.expiry_mode == "inactivity" and self.config.expiry_months:
            # Inactivity expiry: every activity pushes the expiry of all spendable points.
            expires = add_months(self.now, self.config.expiry_months)
            for lot in self.all_lots():
                if lot.status == LotStatus.ACTIVE:
                    lot.expires_at = expires
                    lot.warned_at = None
                    self.touch(lot)

    def finish(self) -> None:
        flush([self])


_LOT_ACCOUNT = PointLot._meta.get_field("account")
_ENTRY_ACCOUNT = LedgerEntry._meta.get_field("account")
_ENTRY_LOT = LedgerEntry._meta.get_field("lot")
_CONSUMPTION_ENTRY = LotConsumption._meta.get_field("entry")
_CONSUMPTION_LOT = LotConsumption._meta.get_field("lot")
_TIER_CHANGE_ACCOUNT = TierChange._meta.get_field("account")


def relate(row: models.Model, fk: Any, value: models.Model | None) -> None:
    """``setattr(row, fk.name, value)`` for a ``row`` just made by ``new_instance`` (no
    related object cached yet), without the descriptor's three router calls: every new lot,
    entry and consumption of a batch set one or two foreign keys that way, each a third of
    what building the row cost. With no database router configured those calls answer from
    the instances alone (``db_for_write`` with an instance hint: its ``_state.db``, else the
    default alias; ``allow_relation``: the two aliases equal), which is what this does;
    with a router, a value of another class or aliases that differ, the descriptor itself
    runs (and decides, or raises, as it always did)."""
    if value is None:
        for own, _ in fk.related_fields:
            row.__dict__[own.attname] = None
        fk.set_cached_value(row, None)
        return
    state = row._state
    other = value._state
    if (
        router.routers
        or type(value) is not fk.related_model
        or (state.db is not None and other.db is not None and state.db != other.db)
    ):
        setattr(row, fk.name, value)
        return
    if state.db is None:
        state.db = other.db or DEFAULT_DB_ALIAS
    if other.db is None:
        other.db = state.db
    ((own, target),) = fk.related_fields
    row.__dict__[own.attname] = getattr(value, target.attname)
    fk.set_cached_value(row, value)


def flush(postings: Iterable[Posting]) -> None:
    """Write the work of many postings: a constant number of queries whatever their size."""
    postings = list(postings)
    lots = [lot for p in postings for lot in p.new_lots]
    _insert(PointLot, lots)
    entries = [e for p in postings for e in p.new_entries]
    for entry in entries:
        if entry.lot is not None:
            entry.lot_id = entry.lot.pk
    _insert(LedgerEntry, entries)
    consumptions = [c for p in postings for c in p.consumptions]
    for consumption in consumptions:
        consumption.entry_id = consumption.entry.pk
        consumption.lot_id = consumption.lot.pk
    _insert(LotConsumption, consumptions)
    new_ids = {id(lot) for lot in lots}
    dirty = [lot for p in postings for lot in p.dirty_lots.values() if id(lot) not in new_ids]
    if dirty:
        update_rows(PointLot, dirty, LOT_FIELDS)
    accounts = [
        p.account for p in postings if p.stored is None or p.stored != account_values(p.account)
    ]
    if accounts:
        update_rows(LoyaltyAccount, accounts, ACCOUNT_FIELDS)
    _insert(TierChange, [t for p in postings for t in p.tier_changes])
    write_back([p.account for p in postings if p.changed])
    for p in postings:
        if p.lots_loaded is not None:
            p.lots_loaded.extend(p.new_lots)
        p.new_lots, p.new_entries, p.consumptions, p.tier_changes = [], [], [], []
        p.dirty_lots = {}
        p.initial = (p.account.balance, p.account.pending, p.account.tier)
        if p.stored is not None:
            p.stored = account_values(p.account)


# From this many rows on, COPY (two round trips: ids from the sequence, then the rows) costs
# less CPU than ``bulk_create`` (one INSERT whose every parameter is quoted in Python). An inbox
# batch writes a few dozen lots and entries; a single posting (a redemption) stays on INSERT.
COPY_THRESHOLD = 20


def _insert(model: type[models.Model], rows: list[Any]) -> None:
    """Batches go through COPY (``bulk_create`` spends most of a replay quoting parameters in
    Python); ids are set on the rows either way."""
    insert_rows(model, rows, copy_threshold=COPY_THRESHOLD)


def write_back(accounts: Iterable[LoyaltyAccount]) -> None:
    """Mirror tier and balance into the customers' Saleor private metadata (batched by the
    write-back task). Plain keys describe the account that changed last; per-channel keys keep
    every channel visible for customers who shop in several."""
    from saleor_crm_plugin.writeback.services import queue_private_metadata_many

    items: dict[str, dict[str, str]] = {}
    for account in accounts:
        customer = account.customer
        if customer.saleor_user_id is None or customer.is_erased:
            continue
        slug = account.channel_slug or account.channel_id
        items.setdefault(customer.saleor_user_id, {}).update(
            {
                "crm.points": str(account.balance),
                "crm.tier": account.tier,
                f"crm.points.{slug}": str(account.balance),
                f"crm.tier.{slug}": account.tier,
            }
        )
    queue_private_metadata_many(items)
