"""Expiry with its warning hook; bonuses (signup, birthday, review cap, referral, staff)."""

from datetime import date

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from saleor_crm_plugin.loyalty import expiry, services
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    LedgerEntry,
    LotStatus,
    LoyaltyAccount,
    PointLot,
)
from tests.loyalty.builders import CHANNEL, account, apply, customer, customer_event, days

BASE = {"tiers": [{"code": "member", "threshold": 0, "multiplier": 1}]}


def give(user, points, *, now=None, key=None):
    apply(customer_event(user))
    return services.adjust_points(
        customer=customer(user),
        channel_id=CHANNEL,
        points=points,
        reason="test credit",
        bonus=True,
        idempotency_key=key or f"give-{user}-{points}-{now}",
        now=now,
    )


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**BASE, "expiry_months": 2, "expiry_warning_days": 10})
def test_lots_expire_after_n_months_with_one_warning_first():
    start = timezone.now() - days(100)
    give(1, 40, now=start)
    give(1, 25, now=start + days(50))
    warnings = []

    def listener(sender, account, points, expires_at, lots, **kwargs):
        warnings.append((account.pk, points, [lot.points for lot in lots]))

    expiry.points_expiring.connect(listener)
    try:
        warn_at = start + days(55)  # the first lot expires ~start + 61 days
        assert expiry.warn_expiring(now=warn_at) == 1
        assert expiry.warn_expiring(now=warn_at + days(1)) == 0  # once per lot
    finally:
        expiry.points_expiring.disconnect(listener)
    assert warnings == [(account().pk, 40, [40])]

    run = expiry.expire_due(now=start + days(70))

    assert (run.expired_lots, run.expired_points) == (1, 40)
    first = PointLot.objects.get(points=40)
    assert (first.status, first.remaining) == (LotStatus.EXPIRED, 0)
    assert account().balance == 25
    assert LedgerEntry.objects.get(kind=EntryKind.EXPIRE).points == -40
    assert expiry.expire_due(now=start + days(70)).expired_lots == 0
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**BASE, "expiry_months": 2, "expiry_mode": "inactivity"})
def test_inactivity_expiry_is_pushed_back_by_every_activity():
    start = timezone.now() - days(100)
    give(1, 40, now=start)
    give(1, 25, now=start + days(50))  # activity: both lots now expire 2 months after this

    assert expiry.expire_due(now=start + days(70)).expired_lots == 0
    run = expiry.expire_due(now=start + days(115))
    assert (run.expired_lots, run.expired_points) == (2, 65)
    assert account().balance == 0


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**BASE, "signup_bonus": 100})
def test_signup_bonus_once_per_channel():
    apply(customer_event(1))
    services.open_account(customer(1), CHANNEL, "default-channel", "USD")
    services.open_account(customer(1), CHANNEL, "default-channel", "USD")

    acct = account()
    assert (acct.balance, acct.currency) == (100, "USD")
    assert LedgerEntry.objects.filter(kind=EntryKind.BONUS).count() == 1


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**BASE, "birthday_bonus": 30})
def test_birthday_bonus_from_customer_metadata_once_a_year():
    apply(customer_event(1, metadata={"birthday": "1990-03-14"}))
    apply(customer_event(2, metadata={"birthday": "02-29"}))
    apply(customer_event(3, metadata={"birthday": "not a date"}))
    for user in (1, 2, 3):
        services.open_account(customer(user), CHANNEL)

    assert services.award_birthdays(today=date(2027, 3, 14)) == 1
    assert services.award_birthdays(today=date(2027, 3, 14)) == 0
    assert services.award_birthdays(today=date(2027, 2, 28)) == 1  # leap-day birthday
    assert services.award_birthdays(today=date(2028, 2, 28)) == 0  # 2028 has a 29th
    assert [account(u).balance for u in (1, 2, 3)] == [30, 30, 0]


@pytest.mark.django_db
@override_settings(CRM_LOYALTY={**BASE, "review_bonus": 20, "review_bonus_cap": 2})
def test_review_bonus_is_idempotent_and_capped_per_month():
    apply(customer_event(1))
    ada = customer(1)
    march = timezone.now().replace(month=3, day=10)

    results = [
        services.award_review_bonus(
            customer=ada, channel_id=CHANNEL, review_id=rid, approved_at=march
        )
        for rid in ("r1", "r1", "r2", "r3")
    ]

    assert [(r.awarded, r.code) for r in results] == [
        (True, None),
        (False, LoyaltyErrorCode.ALREADY_AWARDED),
        (True, None),
        (False, LoyaltyErrorCode.CAP_REACHED),
    ]
    april = services.award_review_bonus(
        customer=ada, channel_id=CHANNEL, review_id="r3", approved_at=march.replace(month=4)
    )
    assert april.awarded
    assert account().balance == 60
    assert services.revoke_review_bonus("r2") == 20
    assert account().balance == 40
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(
    CRM_LOYALTY={**BASE, "referral_referrer_bonus": 200, "referral_referee_bonus": 50}
)
def test_referral_rewards_both_sides_once_and_never_oneself():
    apply(customer_event(1), customer_event(2), customer_event(3, email="USER1@example.com"))

    referrer, referee = services.award_referral(
        referrer=customer(1), referee=customer(2), channel_id=CHANNEL
    )

    assert (referrer.awarded, referee.awarded) == (True, True)
    assert (account(1).balance, account(2).balance) == (200, 50)
    with pytest.raises(LoyaltyError) as again:
        services.award_referral(referrer=customer(3), referee=customer(2), channel_id=CHANNEL)
    assert (again.value.code, again.value.field) == (LoyaltyErrorCode.ALREADY_AWARDED, "referee")
    for other in (1, 3):  # the same customer, or the same address under another account
        with pytest.raises(LoyaltyError) as selfref:
            services.award_referral(
                referrer=customer(1), referee=customer(other), channel_id=CHANNEL
            )
        assert selfref.value.code == LoyaltyErrorCode.SELF_REFERRAL
    assert LoyaltyAccount.objects.filter(customer=customer(3)).count() == 0


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=BASE)
def test_staff_adjustments_need_a_reason_and_enough_points_and_are_idempotent():
    give(1, 50)
    ada = customer(1)

    with pytest.raises(LoyaltyError) as no_reason:
        services.adjust_points(customer=ada, channel_id=CHANNEL, points=5, reason=" ")
    assert (no_reason.value.code, no_reason.value.field) == (LoyaltyErrorCode.REQUIRED, "reason")
    with pytest.raises(LoyaltyError) as too_much:
        services.adjust_points(customer=ada, channel_id=CHANNEL, points=-60, reason="fix")
    assert (too_much.value.code, too_much.value.field, too_much.value.message) == (
        LoyaltyErrorCode.INSUFFICIENT_POINTS,
        "points",
        "The balance is 50 points; cannot take 60.",
    )

    first = services.adjust_points(
        customer=ada, channel_id=CHANNEL, points=-20, reason="fix", idempotency_key="k1",
        staff_user_id="staff-1",
    )  # fmt: skip
    again = services.adjust_points(
        customer=ada, channel_id=CHANNEL, points=-20, reason="fix", idempotency_key="k1"
    )
    assert first.pk == again.pk
    assert (first.staff_user_id, account().balance) == ("staff-1", 30)
    with pytest.raises(LoyaltyError) as reused:
        services.adjust_points(
            customer=ada, channel_id=CHANNEL, points=-5, reason="fix", idempotency_key="k1"
        )
    assert reused.value.code == LoyaltyErrorCode.DUPLICATE
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=BASE)
def test_audit_command_proves_the_ledger_and_catches_tampering(capsys):
    give(1, 50)

    call_command("crm_loyalty_audit")
    assert "Loyalty ledger consistent: 1 accounts, 1 entries." in capsys.readouterr().out

    LoyaltyAccount.objects.update(balance=75)
    with pytest.raises(CommandError, match="2 loyalty ledger problems"):
        call_command("crm_loyalty_audit")
    assert "balance = sum of entries: expected 50, found 75" in capsys.readouterr().err


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=BASE)
def test_program_summary_reports_liability_per_channel():
    give(1, 500)
    give(2, 300)
    services.adjust_points(customer=customer(2), channel_id=CHANNEL, points=-100, reason="fix")

    (summary,) = services.program_summary()

    assert (summary.accounts, summary.issued, summary.outstanding) == (2, 800, 700)
    assert summary.liability == 7  # 700 points at 0.01 per point


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=BASE)
def test_replay_command_reconciles_orders_projected_without_loyalty(capsys):
    from saleor_crm_plugin.customers import projection
    from tests.loyalty.builders import order_event

    projection.apply_event(order_event(1))  # e.g. history imported before the program existed

    call_command("crm_loyalty_replay")

    assert "Reconciled 1 orders" in capsys.readouterr().out
    assert account().pending == 90
    call_command("crm_loyalty_replay")
    assert LedgerEntry.objects.count() == 1
