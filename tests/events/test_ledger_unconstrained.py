"""Migration 0020: ledger entries point at their account and lot without database constraints.

PostgreSQL checked both keys with one query per posted entry at commit (more than half of an
entry's insert). These tests hold what the constraints guarded: no path of the worker leaves
an entry without its account or lot (batches of several sizes, replays, the per-event path,
guest orders rewarded on registration, refunds, cancellations), accounts and lots with
entries still cannot be deleted through Django, only these two constraints went, and the
migration goes back and forth on a populated ledger.
"""

from __future__ import annotations

import importlib
import random
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import ProtectedError
from django.test import override_settings

from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.types import CrmEvent, EventKind
from saleor_crm_plugin.loyalty.models import (
    LedgerEntry,
    LotConsumption,
    LoyaltyAccount,
    PointLot,
    TierChange,
)
from tests.loyalty.builders import T0, apply, customer_event, order_event

MIGRATION = importlib.import_module(
    "saleor_crm_plugin.migrations.0020_p14_ledger_entries_unconstrained"
)
APP = "saleor_crm_plugin"
NO_TIERS = {"tiers": [{"code": "member", "threshold": 0, "multiplier": 1}]}

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's constraints"
)


def _foreign_keys(model: Any) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = to_regclass(%s)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        return {row[0].split(" REFERENCES")[0] for row in cursor.fetchall()}


def _orphans() -> tuple[int, int]:
    accounts = LoyaltyAccount.objects.values("pk")
    lots = PointLot.objects.values("pk")
    return (
        LedgerEntry.objects.exclude(account_id__in=accounts).count(),
        LedgerEntry.objects.filter(lot__isnull=False).exclude(lot_id__in=lots).count(),
    )


def _stream(seed: int) -> list[CrmEvent]:
    """Orders of registered and guest customers, paid, fulfilled, refunded in part and in
    full, cancelled, and registrations that adopt earlier guest orders."""
    rng = random.Random(seed)
    events: list[CrmEvent] = []
    for n in range(1, 41):
        user = rng.randint(1, 12)
        guest = rng.random() < 0.25
        created = T0 + timedelta(hours=n)
        owner = None if guest else user
        email = f"user{user}@example.com"
        events.append(order_event(n, user=owner, email=email, created=created))
        later = created + timedelta(minutes=30)
        fate = rng.choice(["keep", "fulfil", "refund", "refund all", "cancel"])
        if fate == "fulfil":
            events.append(
                order_event(
                    n,
                    EventKind.ORDER_FULFILLED,
                    user=owner,
                    email=email,
                    created=created,
                    updated=later,
                    status="FULFILLED",
                    fulfilled_at=later,
                )
            )
        elif fate in ("refund", "refund all"):
            amount = "50" if fate == "refund" else "120"
            kind = EventKind.ORDER_REFUNDED if fate == "refund" else EventKind.ORDER_FULLY_REFUNDED
            events.append(
                order_event(
                    n,
                    kind,
                    user=owner,
                    email=email,
                    created=created,
                    updated=later,
                    refunded=amount,
                )
            )
        elif fate == "cancel":
            events.append(
                order_event(
                    n,
                    EventKind.ORDER_CANCELLED,
                    user=owner,
                    email=email,
                    created=created,
                    updated=later,
                    status="CANCELED",
                    cancelled_at=later,
                )
            )
    for user in range(1, 13):
        if rng.random() < 0.6:
            events.append(customer_event(user, at=T0 + timedelta(days=3)))
    return events


@pytest.mark.django_db
def test_only_the_ledger_entries_constraints_are_gone():
    assert _foreign_keys(LedgerEntry) == set()
    assert _foreign_keys(LotConsumption) == {"FOREIGN KEY (entry_id)", "FOREIGN KEY (lot_id)"}
    assert _foreign_keys(PointLot) == {"FOREIGN KEY (account_id)"}
    assert _foreign_keys(TierChange) == {"FOREIGN KEY (account_id)"}
    assert _foreign_keys(LoyaltyAccount) == {"FOREIGN KEY (customer_id)"}
    for name in ("account", "lot"):
        assert LedgerEntry._meta.get_field(name).db_constraint is False


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
@pytest.mark.parametrize("size", [1, 7, 200])
def test_no_path_of_the_worker_leaves_an_entry_without_its_account_or_lot(size):
    """The stream drained in batches of ``size`` (in order, reversed, shuffled; the second
    and third are replays of the same facts), then applied event by event: every entry's
    account and lot exist throughout."""
    events = _stream(size)
    rng = random.Random(size)
    for permutation in (events, list(reversed(events)), rng.sample(events, len(events))):
        for event in permutation:
            inbox.store_event(event, kick=False)
        while inbox.process_pending(batch_size=size):
            pass
        assert LedgerEntry.objects.filter(lot__isnull=False).exists()
        assert _orphans() == (0, 0)
    apply(*rng.sample(events, len(events)))
    assert _orphans() == (0, 0)


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_accounts_and_lots_with_entries_still_cannot_be_deleted_through_django():
    apply(*_stream(3))
    entry = LedgerEntry.objects.filter(lot__isnull=False).select_related("account", "lot").first()
    assert entry is not None
    with pytest.raises(ProtectedError):
        entry.lot.delete()
    with pytest.raises(ProtectedError):
        PointLot.objects.filter(pk=entry.lot_id).delete()
    with pytest.raises(ProtectedError):
        entry.account.delete()
    with pytest.raises(ProtectedError):
        entry.account.customer.delete()
    assert _orphans() == (0, 0)


def _rows() -> list[tuple[Any, ...]]:
    return list(
        LedgerEntry.objects.order_by("pk").values_list(
            "idempotency_key", "account_id", "lot_id", "points", "pending_points"
        )
    )


@pytest.mark.django_db(transaction=True)
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_backwards_restores_both_constraints_and_forwards_drops_them_on_a_populated_ledger():
    apply(*_stream(5))
    rows = _rows()
    assert rows
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes(APP)
    try:
        executor.migrate([(APP, MIGRATION.Migration.dependencies[0][1])])
        assert _foreign_keys(LedgerEntry) == {"FOREIGN KEY (account_id)", "FOREIGN KEY (lot_id)"}
        assert _rows() == rows
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    assert _foreign_keys(LedgerEntry) == set()
    assert _rows() == rows
