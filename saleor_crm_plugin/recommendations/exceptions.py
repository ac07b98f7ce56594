from __future__ import annotations

from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode


class RecommendationError(Exception):
    """A request the recommendation services refuse; ``field`` names the offending input so
    a mutation can map it to ``errors { field code message }`` unchanged."""

    def __init__(
        self, code: RecommendationErrorCode, message: str, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
