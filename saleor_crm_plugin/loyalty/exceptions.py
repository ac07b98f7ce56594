from __future__ import annotations

from saleor_crm_plugin.core.errors import CrmError
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode


class LoyaltyError(CrmError):
    """A request the loyalty program refuses. ``field`` names the input at fault (``None`` when
    the request as a whole is refused). A ``CrmError``, so the GraphQL layer turns it into
    ``errors { field code message }`` without knowing the rules."""

    def __init__(self, code: LoyaltyErrorCode, field: str | None, message: str) -> None:
        super().__init__(message, code=code, field=field)

    def __repr__(self) -> str:
        return f"LoyaltyError({self.code!s}, {self.field!r}, {self.message!r})"
