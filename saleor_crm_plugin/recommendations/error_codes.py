from __future__ import annotations

from enum import StrEnum


class RecommendationErrorCode(StrEnum):
    """Codes the GraphQL layer turns into an enum (Saleor's ``*ErrorCode`` convention)."""

    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    NOT_ENOUGH_DATA = "NOT_ENOUGH_DATA"
    TRAINING_IN_PROGRESS = "TRAINING_IN_PROGRESS"
