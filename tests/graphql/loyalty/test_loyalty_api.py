"""Loyalty over GraphQL: the customer's account, redemption, staff adjustments, program views."""

import pytest
from django.test import override_settings
from django.utils import timezone

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.loyalty import services
from saleor_crm_plugin.loyalty.models import LedgerEntry, Redemption
from tests.graphql.conftest import error_codes, make_customer, user_gid
from tests.loyalty.builders import CHANNEL, apply, days, order_event

SETTINGS = {
    "redemption_min_points": 10,
    "redemption_rate": "0.1",
    "tiers": [
        {"code": "bronze", "name": "Bronze", "threshold": 0, "multiplier": 1},
        {"code": "silver", "name": "Silver", "threshold": 500, "multiplier": 2},
    ],
}

ACCOUNT = """
query Loyalty($channel: String!, $first: Int, $after: String) {
  me {
    loyalty(channel: $channel) {
      channelSlug currency balance pending debt lifetimeEarned
      balanceValue { amount currency }
      tier { code name multiplier } nextTier { code threshold } toNextTier progress
      expiring(days: 400) { points expiresAt }
      history(first: $first, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { node { kind source points pendingPoints reason } }
      }
    }
  }
}
"""


@pytest.fixture
def member(saleor):
    """Customer 1 with 90 confirmed points (order 1) and 90 pending (order 2)."""
    now = timezone.now()
    with override_settings(CRM_LOYALTY=SETTINGS):
        apply(
            order_event(1, created=now - days(60), updated=now - days(50), status="FULFILLED",
                        fulfilled_at=now - days(50)),
            order_event(2, created=now - days(2)),
        )  # fmt: skip
    return services.find_account(make_or_get_customer(1), "default-channel")


def make_or_get_customer(n):
    from saleor_crm_plugin.customers.models import Customer

    return Customer.objects.get(saleor_user_id=to_global_id("User", n))


@override_settings(CRM_LOYALTY=SETTINGS)
def test_customer_reads_balance_tier_progress_expiring_and_history(gql, mint, member):
    status, body = gql(ACCOUNT, {"channel": "default-channel", "first": 1}, token=mint(user_gid(1)))

    assert status == 200, body
    loyalty = body["data"]["me"]["loyalty"]
    assert {k: loyalty[k] for k in ("channelSlug", "currency", "balance", "pending", "debt")} == {
        "channelSlug": "default-channel",
        "currency": "USD",
        "balance": 90,
        "pending": 90,
        "debt": 0,
    }
    assert loyalty["balanceValue"] == {"amount": 9.0, "currency": "USD"}
    assert loyalty["tier"] == {"code": "bronze", "name": "Bronze", "multiplier": 1.0}
    assert loyalty["nextTier"] == {"code": "silver", "threshold": 500.0}
    assert (loyalty["toNextTier"], loyalty["progress"]) == (320.0, 0.36)  # 180 of 500 spent
    assert [e["points"] for e in loyalty["expiring"]] == [90]
    history = loyalty["history"]
    assert history["totalCount"] == 3  # pending 1, confirm 1, pending 2
    assert history["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["kind"] for e in history["edges"]] == ["PENDING"]

    _, body = gql(
        ACCOUNT,
        {"channel": CHANNEL, "first": 5, "after": history["pageInfo"]["endCursor"]},
        token=mint(user_gid(1)),
    )
    rest = body["data"]["me"]["loyalty"]["history"]["edges"]
    assert [(e["node"]["kind"], e["node"]["points"]) for e in rest] == [
        ("CONFIRM", 90),
        ("PENDING", 0),
    ]


@override_settings(CRM_LOYALTY=SETTINGS)
def test_another_customer_cannot_read_the_account(gql, mint, member):
    make_customer(2)
    query = """query($id: ID!) { customer(id: $id) { loyalty(channel: "default-channel") {
        balance } } }"""

    _, body = gql(query, {"id": user_gid(1)}, token=mint(user_gid(2)))

    assert error_codes(body) == ["PermissionDenied"]
    assert body["data"]["customer"] is None


REDEEM = """
mutation Redeem($points: Int!, $key: String) {
  loyaltyRedeem(channel: "default-channel", points: $points, idempotencyKey: $key) {
    redemption { status points amount { amount currency } giftCardId giftCardLast4 balance }
    account { balance }
    errors { field code message }
  }
}
"""


def test_customer_redeems_points_into_a_gift_card(gql, mint, member, saleor, settings):
    # one mechanism only: mixing override_settings with the settings fixture leaks settings
    settings.CRM_LOYALTY = SETTINGS
    settings.CRM_SALEOR_APP_TOKEN = "app-token"
    settings.CRM_SALEOR_API_URL = saleor.api_url
    saleor.respond(
        lambda q, v, h: {
            "giftCardCreate": {
                "giftCard": {"id": "R2lmdENhcmQ6Nw==", "last4CodeChars": "ABCD"},
                "errors": [],
            }
        }
    )

    _, body = gql(REDEEM, {"points": 50, "key": "k-1"}, token=mint(user_gid(1)))

    result = body["data"]["loyaltyRedeem"]
    assert result["errors"] == []
    assert result["redemption"] == {
        "status": "completed",
        "points": 50,
        "amount": {"amount": 5.0, "currency": "USD"},
        "giftCardId": "R2lmdENhcmQ6Nw==",
        "giftCardLast4": "ABCD",
        "balance": 40,
    }
    assert result["account"] == {"balance": 40}
    sent = [r for r in saleor.requests if r["method"] == "POST"]
    assert sent[-1]["headers"]["Authorization"] == "Bearer app-token"
    assert sent[-1]["body"]["variables"]["input"]["userEmail"] == "user1@example.com"


@override_settings(CRM_LOYALTY=SETTINGS)
@pytest.mark.parametrize(
    ("points", "field", "code"),
    [(500, "points", "INSUFFICIENT_POINTS"), (5, "points", "BELOW_MINIMUM")],
)
def test_refused_redemption_returns_errors_and_debits_nothing(
    gql, mint, member, points, field, code
):
    _, body = gql(REDEEM, {"points": points}, token=mint(user_gid(1)))

    errors = body["data"]["loyaltyRedeem"]["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [(field, code)]
    assert Redemption.objects.count() == 0
    member.refresh_from_db()
    assert member.balance == 90


def test_anonymous_cannot_redeem(gql, saleor):
    _, body = gql(REDEEM, {"points": 10})

    assert error_codes(body) == ["PermissionDenied"]


ADJUST = """
mutation Adjust($customer: ID!, $points: Int!, $reason: String!, $bonus: Boolean) {
  loyaltyAdjust(customerId: $customer, channel: "default-channel", points: $points,
                reason: $reason, bonus: $bonus, idempotencyKey: "adj-1") {
    account { balance }
    entry { kind points reason }
    errors { field code message }
  }
}
"""


@override_settings(CRM_LOYALTY=SETTINGS)
def test_staff_adjusts_points_with_manage_users(gql, mint, member):
    token = mint.thirdparty(user_gid(900), ["MANAGE_USERS"])

    _, body = gql(
        ADJUST,
        {"customer": user_gid(1), "points": 25, "reason": "Goodwill", "bonus": True},
        token=token,
    )

    result = body["data"]["loyaltyAdjust"]
    assert result == {
        "account": {"balance": 115},
        "entry": {"kind": "BONUS", "points": 25, "reason": "Goodwill"},
        "errors": [],
    }
    assert LedgerEntry.objects.get(idempotency_key="staff:adj-1").staff_user_id == user_gid(900)
    assert services.audit() == []


@override_settings(CRM_LOYALTY=SETTINGS)
def test_adjust_errors_and_permission(gql, mint, member):
    staff = mint.thirdparty(user_gid(900), ["MANAGE_USERS"])
    _, body = gql(ADJUST, {"customer": user_gid(1), "points": -500, "reason": "x"}, token=staff)
    assert body["data"]["loyaltyAdjust"]["errors"] == [
        {
            "field": "points",
            "code": "INSUFFICIENT_POINTS",
            "message": "The balance is 90 points; cannot take 500.",
        }
    ]
    _, body = gql(ADJUST, {"customer": "not-an-id", "points": 5, "reason": "x"}, token=staff)
    assert [e["field"] for e in body["data"]["loyaltyAdjust"]["errors"]] == ["customerId"]

    no_perm = mint.thirdparty(user_gid(901), ["MANAGE_ORDERS"])
    _, body = gql(ADJUST, {"customer": user_gid(1), "points": 5, "reason": "x"}, token=no_perm)
    assert error_codes(body) == ["PermissionDenied"]
    _, body = gql(
        ADJUST, {"customer": user_gid(1), "points": 5, "reason": "x"}, token=mint(user_gid(1))
    )
    assert error_codes(body) == ["PermissionDenied"]  # customers cannot grant themselves points


PROGRAM = """
{
  loyaltyProgramSettings(channel: "default-channel") {
    channel enabled pointsPerUnit returnWindowDays redemptionRate tiers { code multiplier }
  }
  loyaltyProgramSummary {
    channelSlug accounts issued pending outstanding liability { amount currency }
    tierCounts
  }
}
"""


@override_settings(CRM_LOYALTY=SETTINGS)
def test_program_settings_and_summary_for_staff(gql, mint, member):
    _, body = gql(PROGRAM, token=mint.thirdparty(user_gid(900), ["MANAGE_USERS"]))

    assert body["data"]["loyaltyProgramSettings"] == {
        "channel": "default-channel",
        "enabled": True,
        "pointsPerUnit": 1.0,
        "returnWindowDays": 30,
        "redemptionRate": 0.1,
        "tiers": [{"code": "bronze", "multiplier": 1.0}, {"code": "silver", "multiplier": 2.0}],
    }
    assert body["data"]["loyaltyProgramSummary"] == [
        {
            "channelSlug": "default-channel",
            "accounts": 1,
            "issued": 90,
            "pending": 90,
            "outstanding": 90,
            "liability": {"amount": 9.0, "currency": "USD"},
            "tierCounts": '{"bronze": 1}',
        }
    ]
    _, body = gql(PROGRAM, token=mint(user_gid(1)))
    assert error_codes(body) == ["PermissionDenied", "PermissionDenied"]


CUSTOMERS = """
query { crmCustomers(first: 50) { edges { node {
  email
  loyalty(channel: "default-channel") {
    balance pending tier { code } progress expiring { points } balanceValue { amount }
  }
  loyaltyAccounts { channelSlug }
} } } }
"""


@override_settings(CRM_LOYALTY=SETTINGS)
def test_a_page_of_customers_with_loyalty_costs_constant_queries(gql, mint):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    token = mint.thirdparty(user_gid(900), ["MANAGE_USERS"])
    now = timezone.now()

    def customers_with_points(users):
        for user in users:
            apply(order_event(user, user=user, created=now - days(60), updated=now - days(50),
                              status="FULFILLED", fulfilled_at=now - days(50)))  # fmt: skip

    customers_with_points([1, 2])
    gql(CUSTOMERS, token=token)  # warm the issuer cache
    with CaptureQueriesContext(connection) as small:
        _, body = gql(CUSTOMERS, token=token)
    assert len(body["data"]["crmCustomers"]["edges"]) == 2
    customers_with_points(range(3, 12))
    with CaptureQueriesContext(connection) as large:
        _, body = gql(CUSTOMERS, token=token)

    edges = body["data"]["crmCustomers"]["edges"]
    assert len(edges) == 11
    assert {e["node"]["loyalty"]["balance"] for e in edges} == {90}
    # customers page, accounts, order histories, expiring lots
    assert len(small.captured_queries) == len(large.captured_queries) == 4
