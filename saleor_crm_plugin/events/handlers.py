"""Where an accepted event goes: the same code for hooks, webhooks, backfill and replays.

The inbox processes a batch in two passes. First the customer/order projection applies every
event of the batch (one savepoint each, aggregates recomputed once at the end of the pass), so
domain handlers always read a projection that already includes the whole batch. Then each
domain's handler runs per event, again in a savepoint of its own: a failing domain handler
retries that event later without undoing its projection, which is idempotent anyway.

Every handler must be idempotent and order-independent (replays are routine). A domain adds its
``handle_event(event)`` (and, for speed, a ``handle_events(events)`` applying the same rules to
a whole batch) to ``_domain_handlers``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from saleor_crm_plugin.core.heap import paused_gc
from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.events.types import CrmEvent
from saleor_crm_plugin.loyalty import services as loyalty

Handler = Callable[[CrmEvent], object]
BatchHandler = Callable[[Sequence[CrmEvent]], object]


def _domain_handlers() -> tuple[tuple[Handler, BatchHandler | None], ...]:
    """Each domain: its per-event handler, and optionally a handler for a whole batch that
    applies the same rules set-wise (the inbox falls back to the per-event one if it fails)."""
    return ((loyalty.handle_event, loyalty.handle_events),)


def project(event: CrmEvent) -> None:
    projection.apply_event(event)


def handle_domain_event(event: CrmEvent) -> None:
    for handler, _ in _domain_handlers():
        handler(event)


def handle_domain_events(events: Sequence[CrmEvent]) -> None:
    """Every domain's pass over a whole batch, with the collector waiting for it
    (``core.heap.paused_gc``): the loyalty replay reads every order of the batch's customers into
    objects that live until it ends."""
    with paused_gc():
        for handler, batch_handler in _domain_handlers():
            if batch_handler is not None:
                batch_handler(events)
            else:
                for event in events:
                    handler(event)


def handle_event(event: CrmEvent) -> None:
    """Both passes for one event (tests, and anything that applies a single event)."""
    project(event)
    handle_domain_event(event)
