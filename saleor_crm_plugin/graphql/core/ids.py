"""Relay global IDs for API arguments: clear errors instead of crashes on foreign input."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from saleor_crm_plugin.core.errors import CrmError
from saleor_crm_plugin.core.ids import InvalidGlobalId, from_global_id


class GraphQLErrorCode(enum.StrEnum):
    """Codes of errors raised by the API layer itself (not by a domain)."""

    INVALID = "INVALID"
    GRAPHQL_ERROR = "GRAPHQL_ERROR"
    NOT_FOUND = "NOT_FOUND"


def resolve_global_id(
    global_id: str, expected_types: str | Iterable[str], *, field: str = "id"
) -> tuple[str, str]:
    """Return ``(type_name, pk)``; raise a ``CrmError`` naming ``field`` for anything that is
    not a global ID of one of ``expected_types``."""
    allowed = {expected_types} if isinstance(expected_types, str) else set(expected_types)
    try:
        type_name, pk = from_global_id(global_id)
    except InvalidGlobalId as exc:
        raise CrmError(str(exc), code=GraphQLErrorCode.INVALID, field=field) from exc
    if type_name not in allowed:
        names = " or ".join(sorted(allowed))
        raise CrmError(
            f"Must receive a {names} id, got {type_name}.",
            code=GraphQLErrorCode.INVALID,
            field=field,
        )
    return type_name, pk
