from __future__ import annotations

from saleor_crm_plugin.core.errors import CrmError
from saleor_crm_plugin.rfm.error_codes import RfmErrorCode


class RfmError(CrmError):
    """Bad input to an RFM service. Carries what a GraphQL error or CLI message needs; raised
    before anything is written, so a rejected call changes nothing."""

    code: RfmErrorCode

    def __init__(self, code: RfmErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}{self.message} ({self.code.value})"
