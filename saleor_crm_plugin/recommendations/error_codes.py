from __future__ import annotations

from enum import StrEnum


class RecommendationErrorCode(StrEnum):
    """Codes the GraphQL layer turns into an enum (Saleor's ``*ErrorCode`` convention)."""

    INVALID = "invalid"
    REQUIRED = "required"
    NOT_FOUND = "not_found"
    NOT_ENOUGH_DATA = "not_enough_data"
    TRAINING_IN_PROGRESS = "training_in_progress"
