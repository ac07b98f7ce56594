"""Program settings: defaults, Django settings, plugin configuration, per-channel overrides."""

from decimal import Decimal

import pytest
from django.test import override_settings

from saleor_crm_plugin.loyalty import config as config_module
from saleor_crm_plugin.loyalty.config import config_as_dict, program_config
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError

# program_config reads the settings staff saved through the API.
pytestmark = pytest.mark.django_db


def test_defaults_are_a_sensible_program():
    config = program_config("Q2hhbm5lbDox", "default-channel")

    assert (config.points_per_unit, config.return_window_days, config.expiry_months) == (
        Decimal(1),
        30,
        12,
    )
    assert [t.code for t in config.tiers] == ["bronze", "silver", "gold"]
    assert config_as_dict(config)["tiers"][1] == {
        "code": "silver",
        "name": "Silver",
        "threshold": "500",
        "multiplier": "1.25",
    }


@override_settings(
    CRM_LOYALTY={"points_per_unit": "2", "signup_bonus": 10},
    CRM_LOYALTY_CHANNELS={"eu": {"points_per_unit": "3", "negative_balance": "clawback"}},
)
def test_channel_overrides_win_by_slug_or_id():
    assert program_config("Q2hhbm5lbDox", "us").points_per_unit == Decimal(2)
    eu = program_config("Q2hhbm5lbDoy", "eu")
    assert (eu.points_per_unit, eu.signup_bonus, eu.negative_balance) == (
        Decimal(3),
        10,
        "clawback",
    )


def test_plugin_configuration_is_read_in_plugin_mode(monkeypatch):
    monkeypatch.setattr(
        config_module,
        "plugin_configuration",
        lambda: {
            "loyalty_enabled": True,
            "loyalty_points_per_unit": "5",
            "loyalty_return_window_days": "14",
            "loyalty_settings": '{"first_order_bonus": 40}',
            "loyalty_channel_settings": '{"b2b": {"enabled": false}}',
        },
    )

    config = program_config("Q2hhbm5lbDox", "retail")
    assert (config.points_per_unit, config.return_window_days, config.first_order_bonus) == (
        Decimal(5),
        14,
        40,
    )
    assert program_config("Q2hhbm5lbDoz", "b2b").enabled is False


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"return_window_days": "thirty"}, "return_window_days", "enter a whole number."),
        ({"points_per_unit": "-1"}, "points_per_unit", "must be a number, 0 or more."),
        ({"rounding": "bankers"}, "rounding", "choose one of down, half_up, up."),
        ({"colour": "red"}, "colour", "unknown setting."),
        (
            {"tiers": [{"code": "a", "threshold": 5}]},
            "tiers",
            "the lowest tier must have threshold 0.",
        ),
    ],
)
def test_invalid_settings_name_the_key(settings, field, message):
    with override_settings(CRM_LOYALTY=settings), pytest.raises(LoyaltyError) as error:
        program_config("Q2hhbm5lbDox")

    assert (error.value.code, error.value.field) == (LoyaltyErrorCode.INVALID_SETTINGS, field)
    assert error.value.message == f"Loyalty setting {field}: {message}"
