"""Saleor global IDs.

Saleor objects are referenced by their Relay global IDs (``base64("Order:<uuid>")``), never by
foreign keys, so the same tables work in App mode (no Saleor tables at all) and in plugin mode.
Plugin hooks hand us model instances with raw primary keys; these helpers turn them into the
same global IDs the webhooks carry, so both adapters produce identical events.
"""

from __future__ import annotations

import base64
import binascii


class InvalidGlobalId(ValueError):
    pass


def to_global_id(type_name: str, pk: object) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def from_global_id(global_id: str) -> tuple[str, str]:
    """Return ``(type_name, pk)``; raise ``InvalidGlobalId`` for anything that is not one."""
    try:
        decoded = base64.b64decode(global_id.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, AttributeError) as exc:
        raise InvalidGlobalId(f"Couldn't resolve id: {global_id!r}.") from exc
    type_name, sep, pk = decoded.partition(":")
    if not sep or not type_name or not pk:
        raise InvalidGlobalId(f"Couldn't resolve id: {global_id!r}.")
    return type_name, pk


def global_id_of_type(global_id: str, expected_type: str) -> str:
    """Validate that ``global_id`` names an object of ``expected_type`` and return it unchanged."""
    type_name, _ = from_global_id(global_id)
    if type_name != expected_type:
        raise InvalidGlobalId(f"Must receive a {expected_type} id, got {type_name}.")
    return global_id
