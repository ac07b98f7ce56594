from __future__ import annotations

from enum import StrEnum


class RfmErrorCode(StrEnum):
    """Error codes of the RFM domain (GraphQL exposes them as an enum)."""

    INVALID = "invalid"
    REQUIRED = "required"
    INVALID_CELL = "invalid_cell"
    DUPLICATE_CELL = "duplicate_cell"
    MISSING_CELL = "missing_cell"
    INVALID_SEGMENT = "invalid_segment"
    INVALID_WINDOW = "invalid_window"
    INVALID_AS_OF = "invalid_as_of"
    CHANNEL_NOT_FOUND = "channel_not_found"
    RUN_NOT_FOUND = "run_not_found"
    NOT_FOUND = "not_found"
