"""Where an accepted event goes: the same code for hooks, webhooks, backfill and replays.

The inbox processes a batch in two passes. First the customer/order projection applies every
event of the batch (one savepoint each, aggregates recomputed once at the end of the pass), so
domain handlers always read a projection that already includes the whole batch. Then each
domain's handler runs per event, again in a savepoint of its own: a failing domain handler
retries that event later without undoing its projection, which is idempotent anyway.

Every handler must be idempotent and order-independent (replays are routine). A domain adds its
``handle_event(event)`` to ``_domain_handlers``.
"""

from __future__ import annotations

from collections.abc import Callable

from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.events.types import CrmEvent
from saleor_crm_plugin.loyalty import services as loyalty

Handler = Callable[[CrmEvent], object]


def _domain_handlers() -> tuple[Handler, ...]:
    return (loyalty.handle_event,)


def project(event: CrmEvent) -> None:
    projection.apply_event(event)


def handle_domain_event(event: CrmEvent) -> None:
    for handler in _domain_handlers():
        handler(event)


def handle_event(event: CrmEvent) -> None:
    """Both passes for one event (tests, and anything that applies a single event)."""
    project(event)
    handle_domain_event(event)
