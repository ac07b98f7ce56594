"""Program settings saved in the database: validation, precedence over the configuration,
audit, the per-process cache, and that edits only affect what is computed afterwards."""

from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from saleor_crm_plugin.core.errors import CrmValidationError
from saleor_crm_plugin.loyalty import config as config_module
from saleor_crm_plugin.loyalty.config import program_config
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.models import (
    LoyaltyProgramOverride,
    LoyaltyProgramSettingsChange,
    PointLot,
)
from saleor_crm_plugin.loyalty.program_settings import (
    Editor,
    effective_config,
    overridden_keys,
    update_program_settings,
)
from tests.loyalty.builders import CHANNEL, account, apply, days, order_event, order_id

pytestmark = pytest.mark.django_db

NO_TIERS = {"tiers": [{"code": "member", "threshold": 0, "multiplier": 1}]}
STAFF = Editor(user_id="VXNlcjo5MDA=", email="staff@example.com", app_id="QXBwOjQy")


def errors_of(values, channel="default-channel"):
    with pytest.raises(CrmValidationError) as raised:
        update_program_settings(channel, values, STAFF)
    return {(e.field, e.code) for e in raised.value.errors}, raised.value.errors


def test_every_bad_value_is_reported_and_nothing_is_stored():
    fields, errors = errors_of(
        {
            "points_per_unit": "-1",
            "rounding": "banker",
            "return_window_days": -1,
            "redemption_rate": "NaN",
            "colour": "blue",
            "signup_bonus": 10,  # valid, but not stored either
        }
    )

    bad = ("points_per_unit", "rounding", "return_window_days", "redemption_rate", "colour")
    assert fields == {(key, LoyaltyErrorCode.INVALID_SETTINGS) for key in bad}
    assert any("down, half_up, up" in e.message for e in errors)
    assert LoyaltyProgramOverride.objects.count() == 0
    assert LoyaltyProgramSettingsChange.objects.count() == 0


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        (
            [{"code": "a", "threshold": 0, "multiplier": 1}, {"code": "b", "threshold": 500,
             "multiplier": 0}],
            "multiplier must be more than 0",
        ),
        (
            [{"code": "a", "threshold": 0, "multiplier": 1}, {"code": "b", "threshold": 500,
             "multiplier": "-2"}],
            "multiplier must be more than 0",
        ),
        (
            [{"code": "a", "threshold": 0, "multiplier": 1}, {"code": "c", "threshold": 900,
             "multiplier": 2}, {"code": "b", "threshold": 500, "multiplier": 1.5}],
            "sorted by threshold",
        ),
        (
            [{"code": "a", "threshold": 0, "multiplier": 1}, {"code": "b", "threshold": 0,
             "multiplier": 2}],
            "distinct thresholds",
        ),
        (
            [{"code": "a", "threshold": 0, "multiplier": 1}, {"code": "a", "threshold": 500,
             "multiplier": 2}],
            "codes must be unique",
        ),
        ([{"code": "a", "threshold": 100, "multiplier": 1}], "threshold 0"),
        ([], "non-empty list"),
    ],
)  # fmt: skip
def test_bad_tiers_are_refused(tiers, message):
    fields, errors = errors_of({"tiers": tiers})

    assert fields == {("tiers", LoyaltyErrorCode.INVALID_SETTINGS)}
    assert message in errors[0].message
    assert LoyaltyProgramOverride.objects.count() == 0


def test_rules_across_keys_hold_for_the_resulting_program():
    with override_settings(CRM_LOYALTY={"redemption_min_points": 200}):
        fields, _ = errors_of({"redemption_max_points": 100})
        assert fields == {("redemption_max_points", LoyaltyErrorCode.INVALID_SETTINGS)}
        assert LoyaltyProgramOverride.objects.count() == 0
        assert effective_config("default-channel").redemption_max_points == 0

        update_program_settings("default-channel", {"redemption_max_points": 300}, STAFF)
        assert effective_config("default-channel").redemption_max_points == 300


@override_settings(
    CRM_LOYALTY={"points_per_unit": "2", "signup_bonus": 10},
    CRM_LOYALTY_CHANNELS={"eu": {"points_per_unit": "3"}},
)
def test_database_beats_channel_config_beats_global_config_beats_defaults():
    assert program_config("", "us").points_per_unit == Decimal(2)
    assert program_config("", "eu").points_per_unit == Decimal(3)
    assert program_config("", "eu").return_window_days == 30  # default

    update_program_settings("", {"points_per_unit": "4"}, STAFF)  # all channels
    assert program_config("", "us").points_per_unit == Decimal(4)
    assert program_config("", "eu").points_per_unit == Decimal(4)

    update_program_settings("eu", {"points_per_unit": "5", "return_window_days": 14}, STAFF)
    eu = program_config("Q2hhbm5lbDoy", "eu")
    assert (eu.points_per_unit, eu.return_window_days, eu.signup_bonus) == (Decimal(5), 14, 10)
    assert program_config("", "us").points_per_unit == Decimal(4)
    assert sorted(overridden_keys("eu")) == ["points_per_unit", "return_window_days"]

    # null removes a saved value: the next layer applies again
    update_program_settings("eu", {"points_per_unit": None}, STAFF)
    assert program_config("", "eu").points_per_unit == Decimal(4)
    update_program_settings("", {"points_per_unit": None}, STAFF)
    assert program_config("", "eu").points_per_unit == Decimal(3)
    assert program_config("", "us").points_per_unit == Decimal(2)


def test_changes_are_audited_with_who_what_and_when():
    before = timezone.now()
    update_program_settings("default-channel", {"points_per_unit": "2", "rounding": "up"}, STAFF)
    update_program_settings("default-channel", {"points_per_unit": "2"}, STAFF)  # no change
    update_program_settings("default-channel", {"rounding": None}, Editor(user_id="VXNlcjox"))

    first, second = LoyaltyProgramSettingsChange.objects.all()
    assert first.channel == "default-channel"
    assert first.changes == {
        "points_per_unit": {"old": None, "new": "2"},
        "rounding": {"old": None, "new": "up"},
    }
    assert (first.changed_by_user_id, first.changed_by_email, first.changed_by_app_id) == (
        "VXNlcjo5MDA=",
        "staff@example.com",
        "QXBwOjQy",
    )
    assert first.changed_at >= before
    assert second.changes == {"rounding": {"old": "up", "new": None}}
    assert second.changed_by_user_id == "VXNlcjox"
    row = LoyaltyProgramOverride.objects.get()
    assert (row.values, row.updated_by_user_id) == ({"points_per_unit": "2"}, "VXNlcjox")
    with pytest.raises(RuntimeError):
        first.save()
    with pytest.raises(RuntimeError):
        first.delete()


def test_tiers_are_stored_in_canonical_form():
    update_program_settings(
        "",
        {
            "tiers": [
                {"code": "member", "threshold": Decimal(0), "multiplier": Decimal(1)},
                {"code": "vip", "name": "VIP", "threshold": "1000", "multiplier": "2.5"},
            ]
        },
        STAFF,
    )

    assert LoyaltyProgramOverride.objects.get().values["tiers"] == [
        {"code": "member", "name": "Member", "threshold": "0", "multiplier": "1"},
        {"code": "vip", "name": "VIP", "threshold": "1000", "multiplier": "2.5"},
    ]
    assert [t.code for t in program_config("", "default-channel").tiers] == ["member", "vip"]


def test_process_cache_sees_updates(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(config_module.time, "monotonic", lambda: clock[0])
    assert program_config(CHANNEL, "default-channel").points_per_unit == Decimal(1)

    # Saved in this process: seen at once.
    update_program_settings("default-channel", {"points_per_unit": "2"}, STAFF)
    assert program_config(CHANNEL, "default-channel").points_per_unit == Decimal(2)

    # Saved by another process (no cache clearing here): seen once the cache lifetime passed.
    LoyaltyProgramOverride.objects.filter(channel="default-channel").update(
        values={"points_per_unit": "3"}
    )
    assert program_config(CHANNEL, "default-channel").points_per_unit == Decimal(2)
    clock[0] += 5.1
    assert program_config(CHANNEL, "default-channel").points_per_unit == Decimal(3)


@override_settings(CRM_LOYALTY=NO_TIERS)
def test_order_processed_after_an_update_earns_at_the_new_rate_earlier_points_stay():
    now = timezone.now()
    done = {"status": "FULFILLED", "fulfilled_at": now - days(50)}
    first = order_event(1, created=now - days(60), updated=now - days(50), **done)
    apply(first)  # window passed: 90 points at once
    assert account().balance == 90

    update_program_settings("default-channel", {"points_per_unit": "2"}, STAFF)
    apply(order_event(2, created=now - days(55), updated=now - days(50), **done))
    apply(first)  # a replay of the earlier order changes nothing

    assert PointLot.objects.get(key=f"order:{order_id(1)}").points == 90
    assert PointLot.objects.get(key=f"order:{order_id(2)}").points == 180
    assert account().balance == 270
