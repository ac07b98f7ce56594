"""Redemption into Saleor gift cards: reserve, create, release; concurrency on PostgreSQL."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings

from saleor_crm_plugin.core.saleor_api import SaleorClient
from saleor_crm_plugin.loyalty import redemption as redemption_service
from saleor_crm_plugin.loyalty import services
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    LedgerEntry,
    LotStatus,
    PointLot,
    Redemption,
    RedemptionStatus,
)
from tests.loyalty.builders import CHANNEL, account, apply, customer, customer_event, user_id

SETTINGS = {
    "tiers": [{"code": "member", "threshold": 0, "multiplier": 1}],
    "redemption_rate": "0.05",
    "redemption_min_points": 20,
    "redemption_max_points": 500,
}
CARD = {"id": "R2lmdENhcmQ6MQ==", "last4CodeChars": "WXYZ"}


def gift_card_answer(query, variables, headers):
    if "giftCardCreate" in query:
        return {"giftCardCreate": {"giftCard": CARD, "errors": []}}
    return {"giftCards": {"edges": []}}


def funded(points=100, *, lots=(60, 40)):
    apply(customer_event(1))
    ada = customer(1)
    services.open_account(ada, CHANNEL, "default-channel", "USD")
    for n, part in enumerate(lots):
        services.adjust_points(
            customer=ada, channel_id=CHANNEL, points=part, reason="credit", bonus=True,
            idempotency_key=f"fund-{n}",
        )  # fmt: skip
    assert account().balance == points
    return ada


def client(fake):
    return SaleorClient(fake.api_url, "app-token")


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=SETTINGS)
def test_redeem_creates_a_gift_card_for_the_customer_and_spends_first_expiring_lots(
    fake_saleor,
):
    fake_saleor.respond(gift_card_answer)
    ada = funded()

    result = redemption_service.redeem_points(
        customer=ada,
        channel_id=CHANNEL,
        points=70,
        idempotency_key="r-1",
        client=client(fake_saleor),
    )

    assert (result.status, result.points, result.amount, result.currency) == (
        RedemptionStatus.COMPLETED,
        70,
        Decimal("3.50"),
        "USD",
    )
    assert (result.gift_card_id, result.gift_card_last4, result.balance) == (CARD["id"], "WXYZ", 30)
    (sent,) = [r["body"] for r in fake_saleor.requests if r["method"] == "POST"]
    assert sent["variables"]["input"] == {
        "balance": {"amount": 3.5, "currency": "USD"},
        "userEmail": "user1@example.com",
        "assignedTo": user_id(1),
        "channel": "default-channel",
        "isActive": True,
        "addTags": ["crm-loyalty", f"crm-loyalty-redemption-{result.redemption_id}"],
        "note": "Loyalty redemption of 70 points",
    }
    assert [(lot.points, lot.remaining, lot.status) for lot in PointLot.objects.order_by("pk")] == [
        (60, 0, LotStatus.SPENT),
        (40, 30, LotStatus.ACTIVE),
    ]
    acct = account()
    assert (acct.balance, acct.lifetime_redeemed) == (30, 70)
    assert services.audit() == []

    again = redemption_service.redeem_points(
        customer=ada,
        channel_id=CHANNEL,
        points=70,
        idempotency_key="r-1",
        client=client(fake_saleor),
    )
    assert again.redemption_id == result.redemption_id
    assert Redemption.objects.count() == 1  # a retried request redeems once


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=SETTINGS)
@pytest.mark.parametrize(
    ("points", "code", "message"),
    [
        (10, LoyaltyErrorCode.BELOW_MINIMUM, "Redeem at least 20 points."),
        (600, LoyaltyErrorCode.ABOVE_MAXIMUM, "Redeem at most 500 points at once."),
        (150, LoyaltyErrorCode.INSUFFICIENT_POINTS, "The balance is 100 points."),
        (0, LoyaltyErrorCode.INVALID, "Points must be positive."),
    ],
)
def test_refused_redemptions_debit_nothing(fake_saleor, points, code, message):
    ada = funded()

    with pytest.raises(LoyaltyError) as error:
        redemption_service.redeem_points(
            customer=ada, channel_id=CHANNEL, points=points, client=client(fake_saleor)
        )

    assert (error.value.code, error.value.field, error.value.message) == (code, "points", message)
    assert account().balance == 100
    assert Redemption.objects.count() == 0
    assert fake_saleor.requests == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=SETTINGS)
def test_saleor_refusal_releases_the_points_to_the_same_lots(fake_saleor):
    fake_saleor.respond(
        lambda q, v, h: {
            "giftCardCreate": {
                "giftCard": None,
                "errors": [{"field": "email", "code": "INVALID", "message": "Bad e-mail"}],
            }
        }
    )
    ada = funded()

    with pytest.raises(LoyaltyError) as error:
        redemption_service.redeem_points(
            customer=ada, channel_id=CHANNEL, points=70, client=client(fake_saleor)
        )

    assert error.value.code == LoyaltyErrorCode.SALEOR_ERROR
    assert "points were returned" in error.value.message
    redemption = Redemption.objects.get()
    assert (redemption.status, redemption.last_error) == (
        RedemptionStatus.RELEASED,
        "INVALID: Bad e-mail",
    )
    assert [(lot.remaining, lot.status) for lot in PointLot.objects.order_by("pk")] == [
        (60, LotStatus.ACTIVE),
        (40, LotStatus.ACTIVE),
    ]
    kinds = list(LedgerEntry.objects.order_by("pk").values_list("kind", "points"))[-2:]
    assert kinds == [(EntryKind.REDEEM, -70), (EntryKind.RELEASE, 70)]
    acct = account()
    assert (acct.balance, acct.lifetime_redeemed) == (100, 0)
    assert redemption_service.release(redemption.pk, "again") is False  # idempotent
    assert services.audit() == []


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=SETTINGS)
@pytest.mark.parametrize("card_was_created", [True, False])
def test_unknown_outcome_keeps_the_reservation_until_saleor_can_tell(fake_saleor, card_was_created):
    ada = funded()
    fake_saleor.respond(lambda q, v, h: (502, {"error": "bad gateway"}))

    result = redemption_service.redeem_points(
        customer=ada, channel_id=CHANNEL, points=50, client=client(fake_saleor)
    )

    assert result.status == RedemptionStatus.RESERVED  # maybe created: neither lost nor doubled
    assert account().balance == 50
    edges = [{"node": CARD}] if card_was_created else []
    fake_saleor.respond(lambda q, v, h: {"giftCards": {"edges": edges}})

    settled = redemption_service.settle_reservations(
        older_than=timedelta(0), client=client(fake_saleor)
    )

    assert settled == 1
    redemption = Redemption.objects.get()
    if card_was_created:
        assert (redemption.status, redemption.gift_card_id) == (
            RedemptionStatus.COMPLETED,
            CARD["id"],
        )
        assert account().balance == 50
    else:
        assert redemption.status == RedemptionStatus.RELEASED
        assert account().balance == 100
    assert services.audit() == []


@pytest.mark.django_db(transaction=True)
@override_settings(CRM_LOYALTY=SETTINGS)
def test_parallel_redemptions_never_overdraw_the_balance(fake_saleor):
    fake_saleor.respond(gift_card_answer)
    ada = funded(lots=(40, 30, 30))
    workers = 8
    barrier = threading.Barrier(workers)
    outcomes: list[object] = []
    lock = threading.Lock()

    def redeem(n):
        try:
            barrier.wait()
            result = redemption_service.redeem_points(
                customer=ada,
                channel_id=CHANNEL,
                points=30,
                idempotency_key=f"parallel-{n}",
                client=client(fake_saleor),
            )
            outcome = result.status
        except LoyaltyError as exc:
            outcome = exc.code
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(map(str, outcomes)) == sorted(
        [RedemptionStatus.COMPLETED] * 3 + [LoyaltyErrorCode.INSUFFICIENT_POINTS] * 5
    )
    acct = account()
    assert (acct.balance, acct.lifetime_redeemed) == (10, 90)
    assert sum(PointLot.objects.values_list("remaining", flat=True)) == 10
    assert Redemption.objects.filter(status=RedemptionStatus.COMPLETED).count() == 3
    assert services.audit() == []


def test_gift_card_documents_are_registered_and_valid_against_saleor_schema():
    from saleor_crm_plugin.core.saleor_api import DOCUMENTS
    from tests.captures import validate_against_saleor

    for name in ("CrmLoyaltyGiftCardCreate", "CrmLoyaltyGiftCardByTag"):
        assert validate_against_saleor(DOCUMENTS[name]) == []
