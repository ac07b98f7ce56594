"""The plugin's configuration form (Saleor dashboard), declared without importing Saleor so it
can be validated and documented from tests and the App.

Values arrive as strings (Saleor stores what the form sends); BOOLEAN fields arrive as bools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# Saleor routes /plugins/global/<PLUGIN_ID>/... to the plugin; only [.0-9A-Za-z_-] allowed.
PLUGIN_ID = "saleor-crm-plugin"


@dataclass(frozen=True)
class ConfigField:
    name: str
    type: str  # string | multiline | boolean | secret
    label: str
    help_text: str
    default: Any
    kind: str = "text"  # how to validate: text | int | decimal | json | bool | url


CONFIG_FIELDS: tuple[ConfigField, ...] = (
    ConfigField(
        "saleor_api_url",
        "string",
        "Saleor API URL",
        "Public GraphQL URL of this Saleor (https://shop.example.com/graphql/), used for "
        "write-back: gift cards, private metadata.",
        "",
        "url",
    ),
    ConfigField(
        "app_token",
        "secret",
        "App token",
        "Token of a Saleor app with MANAGE_USERS, MANAGE_ORDERS, MANAGE_PRODUCTS and "
        "MANAGE_GIFT_CARD, used for write-back (manage.py create_app ...).",
        "",
    ),
    ConfigField(
        "loyalty_enabled", "boolean", "Loyalty program", "Earn and redeem points.", True, "bool"
    ),
    ConfigField(
        "loyalty_points_per_unit",
        "string",
        "Points per currency unit",
        "Points earned per unit of net paid amount (e.g. 1 point per 1 USD).",
        "1",
        "decimal",
    ),
    ConfigField(
        "loyalty_return_window_days",
        "string",
        "Return window (days)",
        "Points stay pending until this many days after fulfilment pass without a return.",
        "30",
        "int",
    ),
    ConfigField(
        "loyalty_points_expiry_months",
        "string",
        "Points expire after (months)",
        "0 = points never expire.",
        "12",
        "int",
    ),
    ConfigField(
        "loyalty_channel_settings",
        "multiline",
        "Per-channel loyalty settings (JSON)",
        'Overrides per channel slug, e.g. {"default-channel": {"points_per_unit": "2"}}.',
        "{}",
        "json",
    ),
    ConfigField(
        "loyalty_settings",
        "multiline",
        "Loyalty program settings (JSON)",
        'Any loyalty setting for all channels, e.g. {"signup_bonus": 100, "tiers": [...]} '
        "(see docs/loyalty.md).",
        "{}",
        "json",
    ),
    ConfigField(
        "rfm_frequency_window_days",
        "string",
        "RFM frequency window (days)",
        "Paid orders counted for Frequency; 0 = lifetime.",
        "365",
        "int",
    ),
    ConfigField(
        "recommendations_enabled",
        "boolean",
        "Recommendations",
        "Train and serve LightFM recommendations.",
        True,
        "bool",
    ),
    ConfigField(
        "inbox_retention_days",
        "string",
        "Keep processed events (days)",
        "Processed Saleor events are deleted after this many days.",
        "30",
        "int",
    ),
)


def validate_configuration(values: dict[str, Any]) -> dict[str, str]:
    """Return ``{field: message}`` for every invalid value (empty dict = valid)."""
    errors: dict[str, str] = {}
    for field in CONFIG_FIELDS:
        if field.name not in values:
            continue
        value = values[field.name]
        if field.kind == "int":
            try:
                if int(str(value).strip()) < 0:
                    raise ValueError
            except ValueError:
                errors[field.name] = f"{field.label}: enter a whole number, 0 or more."
        elif field.kind == "decimal":
            try:
                if Decimal(str(value).strip()) < 0:
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                errors[field.name] = f"{field.label}: enter a number, 0 or more."
        elif field.kind == "json":
            try:
                if not isinstance(json.loads(value or "{}"), dict):
                    raise ValueError
            except ValueError:
                errors[field.name] = f"{field.label}: enter a JSON object."
        elif field.kind == "url" and value and not str(value).startswith(("http://", "https://")):
            errors[field.name] = f"{field.label}: enter an http(s) URL."
    return errors
