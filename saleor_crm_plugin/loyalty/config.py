"""Program settings per channel.

Layers, later ones win: built-in defaults; the plugin configuration form (plugin mode:
``loyalty_*`` fields and the ``loyalty_settings`` JSON); ``CRM_LOYALTY`` (Django settings); the
per-channel overrides of the plugin form (``loyalty_channel_settings``) and of
``CRM_LOYALTY_CHANNELS``, keyed by channel slug or channel id; then what staff saved through the
API (``LoyaltyProgramOverride``: the all-channels row, then the channel's row), so an edit in the
dashboard always takes effect without a redeploy. Every key is documented in
``docs/loyalty.md``. Invalid values raise ``LoyaltyError(INVALID_SETTINGS)`` naming the key, so an
operator's typo is a clear error, never silently different points.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.compat import plugin_configuration
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.models import LoyaltyProgramOverride

ROUNDING_MODES = ("down", "half_up", "up")
EXPIRY_MODES = ("fixed", "inactivity")
TIER_BASES = ("spend", "points")
TIER_PERIODS = ("rolling_12_months", "calendar_year", "lifetime")
NEGATIVE_POLICIES = ("negative", "clawback")
REVIEW_PERIODS = ("month", "year")


@dataclass(frozen=True)
class TierRule:
    code: str
    name: str
    threshold: Decimal  # spend (currency) or points over the tier period
    multiplier: Decimal


DEFAULT_TIERS = (
    TierRule("bronze", "Bronze", Decimal(0), Decimal(1)),
    TierRule("silver", "Silver", Decimal(500), Decimal("1.25")),
    TierRule("gold", "Gold", Decimal(2000), Decimal("1.5")),
)


@dataclass(frozen=True)
class ProgramConfig:
    enabled: bool = True
    points_per_unit: Decimal = Decimal(1)
    rounding: str = "down"
    exclude_shipping: bool = True
    exclude_tax: bool = True
    min_order_amount: Decimal = Decimal(0)
    return_window_days: int = 30
    expiry_months: int = 12  # 0 = never
    expiry_mode: str = "fixed"
    expiry_warning_days: int = 30
    signup_bonus: int = 0
    first_order_bonus: int = 0
    birthday_bonus: int = 0
    birthday_metadata_key: str = "birthday"
    review_bonus: int = 0
    review_bonus_cap: int = 0  # bonuses per period; 0 = no cap
    review_bonus_period: str = "month"
    referral_referrer_bonus: int = 0
    referral_referee_bonus: int = 0
    redemption_rate: Decimal = Decimal("0.01")  # currency per point
    redemption_min_points: int = 100
    redemption_max_points: int = 0  # per redemption; 0 = no maximum
    negative_balance: str = "negative"
    tier_basis: str = "spend"
    tier_period: str = "rolling_12_months"
    tiers: tuple[TierRule, ...] = field(default=DEFAULT_TIERS)

    def tier(self, code: str) -> TierRule | None:
        return next((t for t in self.tiers if t.code == code), None)


_INT_KEYS = {f.name for f in fields(ProgramConfig) if f.type == "int"}
_DEC_KEYS = {f.name for f in fields(ProgramConfig) if f.type == "Decimal"}
_BOOL_KEYS = {f.name for f in fields(ProgramConfig) if f.type == "bool"}
_CHOICES = {
    "rounding": ROUNDING_MODES,
    "expiry_mode": EXPIRY_MODES,
    "tier_basis": TIER_BASES,
    "tier_period": TIER_PERIODS,
    "negative_balance": NEGATIVE_POLICIES,
    "review_bonus_period": REVIEW_PERIODS,
}
# Plugin form fields that predate the JSON settings.
_PLUGIN_FIELDS = {
    "loyalty_enabled": "enabled",
    "loyalty_points_per_unit": "points_per_unit",
    "loyalty_return_window_days": "return_window_days",
    "loyalty_points_expiry_months": "expiry_months",
}


def _bad(key: str, message: str) -> LoyaltyError:
    return LoyaltyError(LoyaltyErrorCode.INVALID_SETTINGS, key, f"Loyalty setting {key}: {message}")


def _convert(key: str, value: Any) -> Any:
    if key == "tiers":
        return _parse_tiers(value)
    if key in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise _bad(key, "enter true or false.")
    if key in _INT_KEYS:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise _bad(key, "enter a whole number.") from None
        if number < 0:
            raise _bad(key, "must be 0 or more.")
        return number
    if key in _DEC_KEYS:
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise _bad(key, "enter a number.") from None
        if not number.is_finite() or number < 0:
            raise _bad(key, "must be a number, 0 or more.")
        return number
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise _bad(key, f"choose one of {', '.join(_CHOICES[key])}.")
        return value
    return str(value)


def _parse_tiers(value: Any) -> tuple[TierRule, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad("tiers", "enter a JSON list.") from None
    if not isinstance(value, list | tuple) or not value:
        raise _bad("tiers", "enter a non-empty list of tiers.")
    tiers = []
    for item in value:
        if isinstance(item, TierRule):
            tiers.append(item)
            continue
        if not isinstance(item, dict) or not item.get("code"):
            raise _bad("tiers", "each tier needs a code.")
        try:
            threshold = Decimal(str(item.get("threshold", 0)))
            multiplier = Decimal(str(item.get("multiplier", 1)))
        except InvalidOperation:
            raise _bad(
                "tiers", f"tier {item['code']}: threshold and multiplier are numbers."
            ) from None
        if threshold < 0 or multiplier < 0:
            raise _bad("tiers", f"tier {item['code']}: negative threshold or multiplier.")
        code = str(item["code"])
        tiers.append(TierRule(code, str(item.get("name") or code.title()), threshold, multiplier))
    tiers.sort(key=lambda t: t.threshold)
    if len({t.code for t in tiers}) != len(tiers):
        raise _bad("tiers", "tier codes must be unique.")
    if tiers[0].threshold != 0:
        raise _bad("tiers", "the lowest tier must have threshold 0.")
    return tuple(tiers)


def _apply(config: ProgramConfig, values: dict[str, Any]) -> ProgramConfig:
    known = {f.name for f in fields(ProgramConfig)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise _bad(key, "unknown setting.")
        changes[key] = _convert(key, value)
    return replace(config, **changes) if changes else config


def _json_dict(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _bad(key, "enter a JSON object.") from None
    if not isinstance(parsed, dict):
        raise _bad(key, "enter a JSON object.")
    return parsed


_CACHE: dict[str, ProgramConfig] = {}
_STORED: tuple[float, dict[str, dict[str, Any]]] | None = None


def stored_overrides() -> dict[str, dict[str, Any]]:
    """The API-saved overrides by channel key (``""`` = all channels). The table has a few rows
    and is read for every event, so each process keeps it for
    ``CRM_LOYALTY_SETTINGS_CACHE_SECONDS``; the process that saves clears it at once."""
    global _STORED
    now = time.monotonic()
    if _STORED is not None and now - _STORED[0] < crm_settings.LOYALTY_SETTINGS_CACHE_SECONDS:
        return _STORED[1]
    rows = dict(LoyaltyProgramOverride.objects.values_list("channel", "values"))
    _STORED = (now, {channel: values for channel, values in rows.items() if values})
    return _STORED[1]


def clear_stored_overrides_cache() -> None:
    global _STORED
    _STORED = None


def program_config(channel_id: str = "", channel_slug: str = "") -> ProgramConfig:
    """The effective program of a channel. Cheap to call per event: the result is memoised on
    the raw inputs, so a changed setting takes effect at once."""
    plugin = plugin_configuration()
    settings_global = crm_settings.LOYALTY
    settings_channels = crm_settings.LOYALTY_CHANNELS
    stored = stored_overrides()
    cache_key = json.dumps(
        [channel_id, channel_slug, plugin, settings_global, settings_channels, stored],
        sort_keys=True,
        default=str,
    )
    cached = _CACHE.get(cache_key)
    if cached is not None:
        return cached
    config = ProgramConfig()
    if plugin:
        config = _apply(
            config,
            {
                name: plugin[form]
                for form, name in _PLUGIN_FIELDS.items()
                if plugin.get(form) not in (None, "")
            },
        )
        config = _apply(config, _json_dict(plugin.get("loyalty_settings"), "loyalty_settings"))
    config = _apply(config, dict(settings_global))
    channel_layers = [
        _json_dict(plugin.get("loyalty_channel_settings"), "loyalty_channel_settings"),
        dict(settings_channels),
    ]
    for layer in channel_layers:
        for name in (channel_id, channel_slug):
            if name and isinstance(layer.get(name), dict):
                config = _apply(config, layer[name])
    # Staff edits win over the deployment's configuration (see docs/loyalty.md, Settings).
    config = _apply(config, stored.get("", {}))
    for name in dict.fromkeys((channel_id, channel_slug)):
        if name:
            config = _apply(config, stored.get(name, {}))
    if len(_CACHE) > 256:
        _CACHE.clear()
    _CACHE[cache_key] = config
    return config


def config_as_dict(config: ProgramConfig) -> dict[str, Any]:
    """Plain data for APIs and docs."""
    data: dict[str, Any] = {}
    for f in fields(ProgramConfig):
        value = getattr(config, f.name)
        if f.name == "tiers":
            value = [
                {
                    "code": t.code,
                    "name": t.name,
                    "threshold": str(t.threshold),
                    "multiplier": str(t.multiplier),
                }
                for t in value
            ]
        elif isinstance(value, Decimal):
            value = str(value)
        data[f.name] = value
    return data


def _canonical(value: Any) -> Any:
    """JSON-safe form of a converted value (as ``config_as_dict`` writes it)."""
    if isinstance(value, tuple):
        return [
            {
                "code": t.code,
                "name": t.name,
                "threshold": str(t.threshold),
                "multiplier": str(t.multiplier),
            }
            for t in value
        ]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _strict_tier_errors(value: Any) -> list[LoyaltyError]:
    """What a configuration file may get away with (it is sorted for it) but an edit form
    should not: tiers out of order, equal thresholds, multipliers that earn nothing."""
    if not isinstance(value, list | tuple):
        return []
    errors: list[LoyaltyError] = []
    previous: Decimal | None = None
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            continue
        label = f"tier {index + 1} ({item.get('code') or '?'})"
        try:
            threshold = Decimal(str(item.get("threshold", 0)))
            multiplier = Decimal(str(item.get("multiplier", 1)))
        except InvalidOperation:
            continue  # reported by _parse_tiers
        if not multiplier.is_finite() or multiplier <= 0:
            errors.append(_bad("tiers", f"{label}: the multiplier must be more than 0."))
        if previous is not None and threshold.is_finite() and threshold <= previous:
            errors.append(
                _bad(
                    "tiers",
                    f"{label}: tiers must be sorted by threshold, lowest first, "
                    "with distinct thresholds.",
                )
            )
        if threshold.is_finite():
            previous = threshold
    return errors


def validate_values(values: dict[str, Any]) -> tuple[dict[str, Any], list[LoyaltyError]]:
    """Check staff-entered settings with the same rules as the configuration (plus the stricter
    tier rules of ``_strict_tier_errors``). Returns the canonical values to store and every
    error, one per key, so a form can show them all at once."""
    known = {f.name for f in fields(ProgramConfig)}
    canonical: dict[str, Any] = {}
    errors: list[LoyaltyError] = []
    for key, value in values.items():
        if key not in known:
            errors.append(_bad(key, "unknown setting."))
            continue
        if key == "tiers":
            strict = _strict_tier_errors(value)
            if strict:
                errors.extend(strict)
                continue
        if key == "birthday_metadata_key" and not str(value).strip():
            errors.append(_bad(key, "enter a metadata key."))
            continue
        try:
            canonical[key] = _canonical(_convert(key, value))
        except LoyaltyError as exc:
            errors.append(exc)
    return canonical, errors


def check_program(config: ProgramConfig) -> list[LoyaltyError]:
    """Rules across keys, checked on the effective program an edit would produce."""
    errors = []
    if config.redemption_max_points and config.redemption_max_points < config.redemption_min_points:
        errors.append(
            _bad(
                "redemption_max_points",
                "must be 0 (no maximum) or at least redemption_min_points "
                f"({config.redemption_min_points}).",
            )
        )
    return errors


def apply_values(config: ProgramConfig, values: dict[str, Any]) -> ProgramConfig:
    """``config`` with already validated ``values`` on top."""
    return _apply(config, values)
