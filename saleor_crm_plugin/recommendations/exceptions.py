from __future__ import annotations

from saleor_crm_plugin.core.errors import CrmError
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode


class RecommendationError(CrmError):
    """A request the recommendation services refuse; ``field`` names the offending input so
    a mutation maps it to ``errors { field code message }`` unchanged."""

    code: RecommendationErrorCode

    def __init__(
        self, code: RecommendationErrorCode, message: str, field: str | None = None
    ) -> None:
        super().__init__(message, code=code, field=field)
