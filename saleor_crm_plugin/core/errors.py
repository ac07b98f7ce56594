"""The base of every domain exception that reaches an API caller.

Services raise these; the GraphQL layer turns them into ``errors { field code message }``
(Saleor's convention) without knowing the domain. ``code`` comes from a per-domain enum so
clients can branch on it; ``message`` is for humans; ``field`` names the offending input.
"""

from __future__ import annotations

import enum


class CrmError(Exception):
    def __init__(self, message: str, *, code: enum.Enum | str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, field={self.field!r})"


class CrmValidationError(CrmError):
    """Several problems at once (one per field), so a form can show them all together."""

    def __init__(self, errors: list[CrmError]):
        if not errors:
            raise ValueError("CrmValidationError needs at least one error.")
        super().__init__(errors[0].message, code=errors[0].code, field=errors[0].field)
        self.errors = errors
