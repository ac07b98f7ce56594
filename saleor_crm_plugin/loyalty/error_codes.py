from __future__ import annotations

from enum import StrEnum


class LoyaltyErrorCode(StrEnum):
    """Codes carried by ``LoyaltyError``; the GraphQL layer exposes them as an enum."""

    NOT_FOUND = "not_found"
    INVALID = "invalid"
    REQUIRED = "required"
    PROGRAM_DISABLED = "program_disabled"
    NOT_ELIGIBLE = "not_eligible"
    INSUFFICIENT_POINTS = "insufficient_points"
    BELOW_MINIMUM = "below_minimum"
    ABOVE_MAXIMUM = "above_maximum"
    SELF_REFERRAL = "self_referral"
    ALREADY_AWARDED = "already_awarded"
    CAP_REACHED = "cap_reached"
    DUPLICATE = "duplicate"
    SALEOR_ERROR = "saleor_error"
    INVALID_SETTINGS = "invalid_settings"
