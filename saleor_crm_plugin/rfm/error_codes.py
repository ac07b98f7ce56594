from __future__ import annotations

from enum import StrEnum


class RfmErrorCode(StrEnum):
    """Error codes of the RFM domain (GraphQL exposes them as the ``RfmErrorCode`` enum;
    values equal names so query errors and mutation errors spell them alike)."""

    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    INVALID_CELL = "INVALID_CELL"
    DUPLICATE_CELL = "DUPLICATE_CELL"
    MISSING_CELL = "MISSING_CELL"
    INVALID_SEGMENT = "INVALID_SEGMENT"
    INVALID_WINDOW = "INVALID_WINDOW"
    INVALID_AS_OF = "INVALID_AS_OF"
    CHANNEL_NOT_FOUND = "CHANNEL_NOT_FOUND"
    RUN_NOT_FOUND = "RUN_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
