"""Where an accepted event goes: the same code for hooks, webhooks, backfill and replays.

Each domain exposes one ``handle_event(event)``; they run in this order inside one savepoint
per event, so a failure leaves no half-applied event behind. Every handler must be idempotent
and order-independent (replays are routine).
"""

from __future__ import annotations

from collections.abc import Callable

from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.events.types import CrmEvent
from saleor_crm_plugin.loyalty import services as loyalty

Handler = Callable[[CrmEvent], object]


def _handlers() -> tuple[Handler, ...]:
    return (projection.apply_event, loyalty.handle_event)


def handle_event(event: CrmEvent) -> None:
    for handler in _handlers():
        handler(event)
