"""loyaltyProgramSettingsUpdate: who may edit, per-field errors, what the query then returns,
and the audit trail of the editor."""

import json

import pytest
from django.utils import timezone

from saleor_crm_plugin.loyalty.models import (
    LoyaltyProgramOverride,
    LoyaltyProgramSettingsChange,
    PointLot,
)
from tests.graphql.conftest import error_codes, staff_answer, user_gid
from tests.loyalty.builders import apply, days, order_event, order_id

UPDATE = """
mutation Update($channel: String, $input: LoyaltyProgramSettingsInput!) {
  loyaltyProgramSettingsUpdate(channel: $channel, input: $input) {
    settings {
      channel pointsPerUnit rounding returnWindowDays signupBonus overridden
      tiers { code name threshold multiplier }
    }
    errors { field code message }
  }
}
"""

SETTINGS = """
query Settings($channel: String) {
  loyaltyProgramSettings(channel: $channel) { channel pointsPerUnit returnWindowDays overridden }
}
"""

STAFF = user_gid(900)


@pytest.fixture
def staff(mint):
    return mint.thirdparty(STAFF, ["MANAGE_USERS"], email="staff@example.com")


def update(gql, token, input, channel="default-channel"):
    status, body = gql(UPDATE, {"channel": channel, "input": input}, token=token)
    assert status in (200, 401), body
    return body


def test_staff_with_manage_users_edits_and_reads_back_the_program(gql, staff):
    body = update(
        gql,
        staff,
        {
            "pointsPerUnit": "2.5",
            "returnWindowDays": 14,
            "tiers": [
                {"code": "member", "threshold": "0", "multiplier": "1"},
                {"code": "vip", "name": "VIP", "threshold": "1000", "multiplier": "2"},
            ],
        },
    )

    result = body["data"]["loyaltyProgramSettingsUpdate"]
    assert result["errors"] == []
    assert result["settings"] == {
        "channel": "default-channel",
        "pointsPerUnit": 2.5,
        "rounding": "down",
        "returnWindowDays": 14,
        "signupBonus": 0,
        "overridden": ["pointsPerUnit", "returnWindowDays", "tiers"],
        "tiers": [
            {"code": "member", "name": "Member", "threshold": 0.0, "multiplier": 1.0},
            {"code": "vip", "name": "VIP", "threshold": 1000.0, "multiplier": 2.0},
        ],
    }
    change = LoyaltyProgramSettingsChange.objects.get()
    assert (change.channel, change.changed_by_user_id, change.changed_by_email) == (
        "default-channel",
        STAFF,
        "staff@example.com",
    )
    assert change.changes["points_per_unit"] == {"old": None, "new": "2.5"}

    _, body = gql(SETTINGS, {"channel": "other"}, token=staff)
    assert body["data"]["loyaltyProgramSettings"] == {
        "channel": "other",
        "pointsPerUnit": 1.0,
        "returnWindowDays": 30,
        "overridden": [],
    }


def test_all_channels_and_null_resets(gql, staff):
    update(gql, staff, {"signupBonus": 50, "returnWindowDays": 10}, channel=None)
    body = update(gql, staff, {"returnWindowDays": 20})

    settings = body["data"]["loyaltyProgramSettingsUpdate"]["settings"]
    assert (settings["signupBonus"], settings["returnWindowDays"]) == (50, 20)

    body = update(gql, staff, {"returnWindowDays": None})
    assert body["data"]["loyaltyProgramSettingsUpdate"]["settings"]["returnWindowDays"] == 10
    _, body = gql(SETTINGS, {}, token=staff)
    assert body["data"]["loyaltyProgramSettings"] == {
        "channel": "",
        "pointsPerUnit": 1.0,
        "returnWindowDays": 10,
        "overridden": ["returnWindowDays", "signupBonus"],
    }
    assert LoyaltyProgramOverride.objects.get(channel="default-channel").values == {}


def test_invalid_values_come_back_per_field_and_nothing_is_stored(gql, staff):
    body = update(
        gql,
        staff,
        {
            "pointsPerUnit": "-1",
            "rounding": "sometimes",
            "returnWindowDays": -3,
            "signupBonus": 100,
            "tiers": [
                {"code": "a", "threshold": "0", "multiplier": "1"},
                {"code": "b", "threshold": "900", "multiplier": "0"},
                {"code": "c", "threshold": "500", "multiplier": "2"},
            ],
        },
    )

    result = body["data"]["loyaltyProgramSettingsUpdate"]
    assert result["settings"] is None
    assert sorted((e["field"], e["code"]) for e in result["errors"]) == [
        ("pointsPerUnit", "INVALID_SETTINGS"),
        ("returnWindowDays", "INVALID_SETTINGS"),
        ("rounding", "INVALID_SETTINGS"),
        ("tiers", "INVALID_SETTINGS"),
        ("tiers", "INVALID_SETTINGS"),
    ]
    assert all(e["message"] for e in result["errors"])
    assert LoyaltyProgramOverride.objects.count() == 0
    assert LoyaltyProgramSettingsChange.objects.count() == 0


def test_cross_field_error_names_the_input_field(gql, staff):
    body = update(gql, staff, {"redemptionMinPoints": 500, "redemptionMaxPoints": 100})

    assert body["data"]["loyaltyProgramSettingsUpdate"]["errors"] == [
        {
            "field": "redemptionMaxPoints",
            "code": "INVALID_SETTINGS",
            "message": "Loyalty setting redemption_max_points: must be 0 (no maximum) or at "
            "least redemption_min_points (500).",
        }
    ]
    assert LoyaltyProgramOverride.objects.count() == 0


def _refused(gql, token):
    status, body = gql(UPDATE, {"channel": "default-channel", "input": {"pointsPerUnit": "9"}},
                       token=token)  # fmt: skip
    assert LoyaltyProgramOverride.objects.count() == 0
    assert LoyaltyProgramSettingsChange.objects.count() == 0
    return status, body


def test_anonymous_is_refused(gql, saleor):
    _, body = _refused(gql, None)
    assert error_codes(body) == ["PermissionDenied"]


def test_customer_is_refused(gql, mint):
    _, body = _refused(gql, mint(user_gid(1)))
    assert error_codes(body) == ["PermissionDenied"]


def test_staff_without_manage_users_is_refused(gql, mint, saleor):
    saleor.respond(staff_answer(STAFF, ["MANAGE_ORDERS", "MANAGE_SETTINGS"]))
    _, body = _refused(gql, mint(STAFF, is_staff=True))
    assert error_codes(body) == ["PermissionDenied"]
    _, body = _refused(gql, mint.thirdparty(STAFF, ["MANAGE_ORDERS"]))
    assert error_codes(body) == ["PermissionDenied"]


def test_expired_token_is_refused(gql, mint):
    status, body = _refused(gql, mint.thirdparty(STAFF, ["MANAGE_USERS"], expires_in=-5))
    assert status == 401
    assert error_codes(body) == ["ExpiredSignatureError"]


def test_order_after_an_update_earns_at_the_new_rate(gql, staff):
    now = timezone.now()
    done = {"status": "FULFILLED", "fulfilled_at": now - days(50)}
    one_tier = [{"code": "member", "threshold": "0", "multiplier": "1"}]
    update(gql, staff, {"tiers": one_tier}, channel=None)
    apply(order_event(1, created=now - days(60), updated=now - days(50), **done))

    update(gql, staff, {"pointsPerUnit": "3"})
    apply(order_event(2, created=now - days(58), updated=now - days(50), **done))

    points = dict(PointLot.objects.values_list("key", "points"))
    assert (points[f"order:{order_id(1)}"], points[f"order:{order_id(2)}"]) == (90, 270)


CHANGES = """
query Changes($channel: String) {
  loyaltyProgramSettingsChanges(first: 10, channel: $channel) {
    totalCount
    edges { node { channel changes changedByUserId changedByEmail changedByAppId changedAt } }
  }
}
"""


def test_audit_trail_is_readable_by_staff_only(gql, staff, mint):
    update(gql, staff, {"pointsPerUnit": "2"})
    update(gql, staff, {"signupBonus": 25}, channel=None)

    _, body = gql(CHANGES, {}, token=staff)
    changes = body["data"]["loyaltyProgramSettingsChanges"]
    assert changes["totalCount"] == 2
    newest, oldest = (edge["node"] for edge in changes["edges"])
    assert (newest["channel"], json.loads(newest["changes"])) == (
        "",
        {"signupBonus": {"old": None, "new": 25}},
    )
    assert (oldest["channel"], oldest["changedByUserId"], oldest["changedByEmail"]) == (
        "default-channel",
        STAFF,
        "staff@example.com",
    )
    assert oldest["changedByAppId"] and oldest["changedAt"]
    _, body = gql(CHANGES, {"channel": "default-channel"}, token=staff)
    assert body["data"]["loyaltyProgramSettingsChanges"]["totalCount"] == 1

    _, body = gql(CHANGES, {}, token=mint(user_gid(1)))
    assert error_codes(body) == ["PermissionDenied"]


def test_decimals_keep_their_written_value_and_garbage_is_not_a_reset(gql, staff):
    body = update(gql, staff, {"redemptionRate": 0.01, "pointsPerUnit": 1.1})
    assert body["data"]["loyaltyProgramSettingsUpdate"]["errors"] == []
    stored = LoyaltyProgramOverride.objects.get().values
    assert (stored["redemption_rate"], stored["points_per_unit"]) == ("0.01", "1.1")

    literal = """mutation { loyaltyProgramSettingsUpdate(input: {pointsPerUnit: 2.5,
      minOrderAmount: 10}) { errors { field } } }"""
    _, body = gql(literal, token=staff)
    assert body["data"]["loyaltyProgramSettingsUpdate"]["errors"] == []
    assert LoyaltyProgramOverride.objects.get(channel="").values == {
        "points_per_unit": "2.5",
        "min_order_amount": "10",
    }

    status, body = gql(UPDATE, {"input": {"pointsPerUnit": "lots"}}, token=staff)
    assert status == 400
    assert 'Expected type "CrmDecimal", found "lots"' in body["errors"][0]["message"]
    assert LoyaltyProgramOverride.objects.get(channel="").values["points_per_unit"] == "2.5"
