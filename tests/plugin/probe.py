"""Stand-ins for the model instances Saleor hands to plugin hooks, built from what a real
Saleor 3.23 passed (``tests/contract/plugin-probe.json``): the same attribute names and no
others (no ``lines``, no ``channel`` relation), with the Python types the models hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from saleor_crm_plugin.core.timeutils import parse_datetime
from tests.captures import plugin_probe

_DATES = {"date_joined", "updated_at", "created_at"}
_AMOUNTS = {"total_gross_amount", "total_net_amount", "total_charged_amount"}


class ProbeObject:
    def __init__(self, recorded: dict[str, Any]) -> None:
        self._type = recorded["type"]
        for name, value in recorded.items():
            if name == "type":
                continue
            if name in _DATES:
                value = parse_datetime(value)
            elif name in _AMOUNTS:
                value = Decimal(value)
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"<{self._type} {getattr(self, 'pk', '?')}>"


def probe_calls() -> list[tuple[str, ProbeObject, dict[str, Any]]]:
    """``(hook, first argument, kwargs)`` for every recorded call except the HTTP one."""
    calls = []
    for call in plugin_probe()["observed_hook_calls"]:
        if call["hook"] == "webhook":
            continue
        kwargs = {}
        if "webhooks" in call["kwargs"]:
            kwargs["webhooks"] = (
                set() if call["kwargs"]["webhooks"]["type"] == "builtins.set" else None
            )
        calls.append((call["hook"], ProbeObject(call["args"][0]), kwargs))
    return calls
