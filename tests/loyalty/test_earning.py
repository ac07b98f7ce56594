"""Earning from orders: pending points, confirmation after the return window, exact reversals,
and convergence whatever the order and repetition of Saleor's events."""

import random

import pytest
from django.test import override_settings
from django.utils import timezone

from saleor_crm_plugin.events.types import EventKind
from saleor_crm_plugin.loyalty import services
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    LedgerEntry,
    LotStatus,
    LoyaltyAccount,
    PointLot,
)
from saleor_crm_plugin.writeback.models import MetadataWriteback
from tests.loyalty.builders import (
    T0,
    account,
    apply,
    customer_event,
    days,
    loyalty_state,
    order_event,
    order_id,
    user_id,
)

NO_TIERS = {"tiers": [{"code": "member", "threshold": 0, "multiplier": 1}]}


def order_lifecycle(n=1, *, user=1, created=T0):
    """created (unpaid) -> paid -> fulfilled -> refund 30 -> refund 60 (cumulative 90 of 120)."""
    fulfilled = created + days(2)
    return [
        order_event(n, EventKind.ORDER_CREATED, user=user, created=created, paid=False),
        order_event(n, EventKind.ORDER_FULLY_PAID, user=user, created=created,
                    updated=created + days(0.1)),
        order_event(n, EventKind.ORDER_FULFILLED, user=user, created=created,
                    updated=fulfilled, status="FULFILLED", fulfilled_at=fulfilled),
        order_event(n, EventKind.ORDER_REFUNDED, user=user, created=created,
                    updated=created + days(5), status="FULFILLED", fulfilled_at=fulfilled,
                    refunded="30"),
        order_event(n, EventKind.ORDER_REFUNDED, user=user, created=created,
                    updated=created + days(6), status="FULFILLED", fulfilled_at=fulfilled,
                    refunded="90"),
    ]  # fmt: skip


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_paid_order_earns_pending_points_on_net_goods_amount():
    # 120 gross incl. 12 shipping, net 100: (120 - 12) * 100/120 = 90 points at 1 per unit
    apply(order_event(1, created=timezone.now() - days(1)))

    acct = account()
    assert (acct.balance, acct.pending) == (0, 90)
    lot = PointLot.objects.get(key=f"order:{order_id(1)}")
    assert (lot.status, lot.points, lot.base_points, lot.confirm_after) == (
        LotStatus.PENDING,
        90,
        90,
        None,  # not fulfilled yet: the return window has not even started
    )
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.points, entry.pending_points, entry.idempotency_key) == (
        EntryKind.PENDING,
        0,
        90,
        f"order:{order_id(1)}",
    )
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_unpaid_order_earns_nothing_and_opens_no_account():
    apply(order_event(1, EventKind.ORDER_CREATED, paid=False))

    assert LoyaltyAccount.objects.count() == 0
    assert LedgerEntry.objects.count() == 0


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**NO_TIERS, "exclude_shipping": False, "exclude_tax": False})
def test_shipping_and_tax_can_be_included():
    apply(order_event(1, created=timezone.now()))

    assert account().pending == 120


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**NO_TIERS, "min_order_amount": "95"})
def test_order_below_minimum_earns_nothing():
    apply(order_event(1))

    assert LoyaltyAccount.objects.count() == 0


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_partial_refunds_reverse_exactly_the_cumulative_share():
    apply(*order_lifecycle()[:2])  # paid, not fulfilled: stays pending
    apply(order_event(1, EventKind.ORDER_REFUNDED, updated=T0 + days(5), refunded="30"))

    lot = PointLot.objects.get(key=f"order:{order_id(1)}")
    assert lot.reversed_points == 23  # 90 * 30/120 = 22.5 -> 23
    assert account().pending == 67

    apply(order_event(1, EventKind.ORDER_REFUNDED, updated=T0 + days(6), refunded="90"))

    lot.refresh_from_db()
    assert lot.reversed_points == 68  # 90 * 90/120 = 67.5 -> 68, not 23 + 45
    assert account().pending == 22
    reversals = LedgerEntry.objects.filter(kind=EntryKind.REVERSE).order_by("pk")
    assert [e.pending_points for e in reversals] == [-23, -45]
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_full_refund_and_cancellation_reverse_everything():
    apply(order_event(1), order_event(2, created=T0 + days(1)))

    apply(order_event(1, EventKind.ORDER_FULLY_REFUNDED, updated=T0 + days(3), refunded="120"))
    apply(
        order_event(
            2,
            EventKind.ORDER_CANCELLED,
            created=T0 + days(1),
            updated=T0 + days(3),
            status="CANCELED",
            cancelled_at=T0 + days(3),
        )
    )

    assert set(PointLot.objects.values_list("status", "reversed_points")) == {
        (LotStatus.REVERSED, 90)
    }
    assert (account().balance, account().pending) == (0, 0)
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_points_confirm_when_the_return_window_has_passed():
    now = timezone.now()
    fulfilled = now - days(10)
    apply(
        order_event(1, created=now - days(12), updated=fulfilled, status="FULFILLED",
                    fulfilled_at=fulfilled)
    )  # fmt: skip
    lot = PointLot.objects.get()
    assert lot.status == LotStatus.PENDING
    assert lot.confirm_after == fulfilled + days(30)

    assert services.confirm_due(now=now + days(19)) == 0
    assert services.confirm_due(now=now + days(21)) == 1

    lot.refresh_from_db()
    assert (lot.status, lot.remaining) == (LotStatus.ACTIVE, 90)
    assert lot.expires_at.date() == (now + days(21)).replace(year=now.year + 1).date()
    acct = account()
    assert (acct.balance, acct.pending, acct.lifetime_earned) == (90, 0, 90)
    confirm = LedgerEntry.objects.get(kind=EntryKind.CONFIRM)
    assert (confirm.points, confirm.pending_points) == (90, -90)
    assert services.confirm_due(now=now + days(22)) == 0  # nothing twice
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**NO_TIERS, "return_window_days": 14})
def test_return_window_is_a_per_channel_setting():
    now = timezone.now()
    apply(order_event(1, created=now - days(20), updated=now - days(15), status="FULFILLED",
                      fulfilled_at=now - days(15)))  # fmt: skip

    assert account().balance == 90  # 15 days after fulfilment, window 14: confirmed at once


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_replays_twice_and_in_any_order_give_the_same_ledger():
    items = (
        order_lifecycle(1)
        + order_lifecycle(2, created=T0 + days(1))
        + order_lifecycle(3, user=2, created=T0 + days(2))
    )
    apply(*items)
    once = loyalty_state()
    entries = LedgerEntry.objects.count()
    assert once["accounts"][(user_id(1), once_channel(once))][0] == 2 * 22  # confirmed 90-68

    apply(*items)
    assert loyalty_state() == once
    assert LedgerEntry.objects.count() == entries  # a replay posts nothing

    for permutation in (list(reversed(items)), random.Random(4).sample(items, len(items))):
        reset_loyalty_and_projection()
        apply(*permutation)
        apply(*permutation)
        assert loyalty_state()["accounts"] == once["accounts"]
        assert loyalty_state()["lots"] == once["lots"]
        assert services.audit() == []


def once_channel(state):
    return next(iter(state["accounts"]))[1]


def reset_loyalty_and_projection():
    from saleor_crm_plugin.customers.models import Customer, Order
    from saleor_crm_plugin.loyalty.models import (
        LotConsumption,
        Redemption,
        TierChange,
    )

    LotConsumption.objects.all().delete()
    LedgerEntry.objects.all()._raw_delete(LedgerEntry.objects.db)
    Redemption.objects.all().delete()
    TierChange.objects.all().delete()
    PointLot.objects.all().delete()
    LoyaltyAccount.objects.all().delete()
    MetadataWriteback.objects.all().delete()
    Order.objects.all().delete()
    Customer.objects.all().delete()


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**NO_TIERS, "redemption_min_points": 1})
def test_refund_of_spent_points_makes_the_balance_negative_then_repays():
    now = timezone.now()
    done = {"status": "FULFILLED", "fulfilled_at": now - days(40), "updated": now - days(40)}
    apply(order_event(1, created=now - days(41), **done))
    acct = account()
    assert acct.balance == 90
    services.adjust_points(
        customer=acct.customer, channel_id=acct.channel_id, points=-80, reason="spent"
    )

    apply(order_event(1, EventKind.ORDER_FULLY_REFUNDED, created=now - days(41),
                      status="FULFILLED", fulfilled_at=now - days(40), updated=now - days(1),
                      refunded="120"))  # fmt: skip

    acct.refresh_from_db()
    assert (acct.balance, acct.debt) == (-80, 80)  # owed, not lost
    assert services.audit() == []

    apply(order_event(2, created=now - days(39), **done))  # 90 more, confirmed at once

    acct.refresh_from_db()
    assert (acct.balance, acct.debt) == (10, 0)
    assert PointLot.objects.get(key=f"order:{order_id(2)}").remaining == 10
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**NO_TIERS, "negative_balance": "clawback"})
def test_clawback_takes_other_lots_first_then_writes_off_explicitly():
    now = timezone.now()
    done = {"status": "FULFILLED", "fulfilled_at": now - days(40), "updated": now - days(40)}
    apply(order_event(1, created=now - days(42), **done))
    apply(order_event(2, created=now - days(41), total="24", net="20", shipping="0", **done))
    acct = account()
    assert acct.balance == 90 + 20
    services.adjust_points(
        customer=acct.customer, channel_id=acct.channel_id, points=-100, reason="spent"
    )  # takes lot 1 (90) then 10 of lot 2

    apply(order_event(1, EventKind.ORDER_FULLY_REFUNDED, created=now - days(42),
                      status="FULFILLED", fulfilled_at=now - days(40), updated=now - days(1),
                      refunded="120"))  # fmt: skip

    acct.refresh_from_db()
    assert (acct.balance, acct.debt) == (0, 0)  # 10 left of lot 2 clawed back
    write_off = LedgerEntry.objects.get(kind=EntryKind.ADJUST, points__gt=0)
    assert write_off.points == 80
    assert "already been spent" in write_off.reason
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_guest_orders_earn_once_the_customer_registers():
    apply(order_event(1, user=None, email="ann@example.com", created=timezone.now()))
    assert LoyaltyAccount.objects.count() == 0

    apply(customer_event(7, email="ann@example.com"))

    assert account(7).pending == 90
    apply(customer_event(7, email="ann@example.com", at=T0 + days(1),
                         kind=EventKind.CUSTOMER_UPDATED))  # fmt: skip
    assert account(7).pending == 90


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**NO_TIERS, "first_order_bonus": 50, "signup_bonus": 25})
def test_first_order_bonus_follows_the_earliest_order_whatever_arrives_first():
    later = order_event(2, created=T0 + days(3))
    earlier = order_event(1, created=T0)

    apply(later)
    assert PointLot.objects.get(key__startswith="first-order").order_id == order_id(2)
    apply(earlier)

    bonus = PointLot.objects.get(key__startswith="first-order")
    assert (bonus.order_id, bonus.points, bonus.status) == (order_id(1), 50, LotStatus.PENDING)
    signup = PointLot.objects.get(key__startswith="signup")
    assert (signup.status, signup.remaining) == (LotStatus.ACTIVE, 25)
    assert (account().balance, account().pending) == (25, 90 + 90 + 50)

    # the bonus is for the first order the customer keeps: refunding order 1 moves it on
    apply(order_event(1, EventKind.ORDER_FULLY_REFUNDED, updated=T0 + days(4), refunded="120"))
    bonus.refresh_from_db()
    assert (bonus.order_id, bonus.status) == (order_id(2), LotStatus.PENDING)
    # ... and when no order is kept, it is reversed with the last one
    apply(order_event(2, EventKind.ORDER_FULLY_REFUNDED, created=T0 + days(3),
                      updated=T0 + days(5), refunded="120"))  # fmt: skip
    bonus.refresh_from_db()
    assert (bonus.status, bonus.reversed_points) == (LotStatus.REVERSED, 50)
    assert (account().balance, account().pending) == (25, 0)
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_balance_and_tier_are_written_back_to_saleor_metadata():
    apply(order_event(1, created=timezone.now() - days(50), status="FULFILLED",
                      fulfilled_at=timezone.now() - days(45),
                      updated=timezone.now() - days(45)))  # fmt: skip

    row = MetadataWriteback.objects.get(object_id=user_id(1))
    assert row.items == {
        "crm.points": "90",
        "crm.tier": "member",
        "crm.points.default-channel": "90",
        "crm.tier.default-channel": "member",
    }


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**NO_TIERS, "enabled": False})
def test_disabled_program_posts_nothing():
    apply(order_event(1))

    assert LedgerEntry.objects.count() == 0


@pytest.mark.django_db
def test_ledger_entries_are_append_only():
    with override_settings(CRM_LOYALTY=NO_TIERS):
        apply(order_event(1))
    entry = LedgerEntry.objects.get()

    entry.points = 1000
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={"first_order_bonus": 10, "signup_bonus": 5})
@pytest.mark.parametrize("copy_threshold", [1, 100_000], ids=["copy", "insert"])
def test_bulk_replay_gives_the_same_ledger_as_the_event_handler(monkeypatch, copy_threshold):
    from saleor_crm_plugin.customers import projection
    from saleor_crm_plugin.loyalty import ledger

    monkeypatch.setattr(ledger, "COPY_THRESHOLD", copy_threshold)

    items = (
        order_lifecycle(1)
        + order_lifecycle(2, created=T0 + days(40))
        + order_lifecycle(3, user=2, created=T0 + days(2))
    )
    apply(*items)
    by_event = loyalty_state()
    reset_loyalty_and_projection()
    for event in items:
        projection.apply_event(event)

    assert services.replay_orders(chunk=1) == 3
    assert loyalty_state()["accounts"] == by_event["accounts"]
    assert loyalty_state()["lots"] == by_event["lots"]
    entries = LedgerEntry.objects.count()
    services.replay_orders()
    assert LedgerEntry.objects.count() == entries
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_confirmation_walks_all_accounts_in_batches_and_skips_held_returns():
    now = timezone.now()
    for user in (1, 2, 3):
        apply(order_event(user, user=user, created=now - days(12), updated=now - days(10),
                          status="RETURNED" if user == 1 else "FULFILLED",
                          fulfilled_at=now - days(10)))  # fmt: skip

    assert services.confirm_due(now=now + days(25), batch=1) == 3

    statuses = dict(PointLot.objects.values_list("order_id", "status"))
    assert statuses == {
        order_id(1): LotStatus.PENDING,  # returned, refund not in yet: held
        order_id(2): LotStatus.ACTIVE,
        order_id(3): LotStatus.ACTIVE,
    }
    assert services.confirm_due(now=now + days(25), batch=1) == 1  # the held one only


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={"first_order_bonus": 10, "signup_bonus": 5})
def test_inbox_batches_give_the_same_ledger_as_event_by_event():
    from saleor_crm_plugin.events import inbox

    items = [
        customer_event(1),
        customer_event(2),
        *order_lifecycle(1),
        *order_lifecycle(2, created=T0 + days(40)),
        *order_lifecycle(3, user=2, created=T0 + days(2)),
    ]
    apply(*items)
    by_event = loyalty_state()
    reset_loyalty_and_projection()

    for event in random.Random(3).sample(items, len(items)):
        inbox.store_event(event, kick=False)
    inbox.process_pending(batch_size=7)  # projection and loyalty in bulk, batch by batch

    assert loyalty_state()["accounts"] == by_event["accounts"]
    assert loyalty_state()["lots"] == by_event["lots"]
    assert services.audit() == []


def test_history_rows_are_what_the_constructors_give():
    from decimal import Decimal

    from saleor_crm_plugin.loyalty.earning import OrderRow, _row
    from saleor_crm_plugin.loyalty.rules import OrderFacts

    for cancelled in (None, T0 + days(1)):
        values = ("o-1", T0, T0 + days(2), cancelled, "FULFILLED", Decimal("120"),
                  Decimal("100"), None, Decimal("90"), Decimal("30"))  # fmt: skip
        expected = OrderRow(
            order_id="o-1",
            created_at=T0,
            fulfilled_at=T0 + days(2),
            facts=OrderFacts(
                status="FULFILLED",
                total_gross=Decimal("120"),
                total_net=Decimal("100"),
                shipping_gross=None,
                total_charged=Decimal("90"),
                total_refunded=Decimal("30"),
                cancelled=cancelled is not None,
            ),
        )
        row = _row(values)
        assert row == expected and hash(row) == hash(expected)
        assert type(row) is OrderRow and type(row.facts) is OrderFacts
        assert vars(row.facts) == vars(expected.facts)
        assert row.facts.paid_original == Decimal("120")
        assert row.facts.fully_reversed is (cancelled is not None)


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_a_replay_reads_the_program_once_per_channel(monkeypatch):
    from saleor_crm_plugin.loyalty import earning

    for n in (1, 2, 3):
        apply(order_event(n, user=n, created=timezone.now() - days(1)))
    before = loyalty_state()
    calls = []
    real = earning.program_config
    monkeypatch.setattr(earning, "program_config", lambda *args: calls.append(args) or real(*args))

    assert earning.replay_orders() == 3
    assert len(calls) == 1  # three accounts, one channel
    assert loyalty_state() == before  # and the replay changed nothing
