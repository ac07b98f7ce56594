"""Subscription queries in the App manifest: one webhook per event we consume.

The fragments are the ones captured from a real Saleor 3.23 (``tests/contract/subscriptions``)
plus transactions, granted refunds and fulfillments on every order event, so any order event
tells us payments, refunded quantities and fulfilment dates. Each query is validated against
Saleor's schema in the contract tests.
"""

from __future__ import annotations

from saleor_crm_plugin.events.saleor_fragments import CUSTOMER_FRAGMENT, ORDER_FRAGMENT
from saleor_crm_plugin.events.types import EventKind

EVENT_HEADER = """
    __typename
    issuedAt
    version
    issuingPrincipal {
      __typename
      ... on App { id name }
      ... on User { id email }
    }
    recipient { id name }
"""

# Saleor's event type name for each Saleor-Event header value.
EVENT_TYPENAMES: dict[EventKind, str] = {
    EventKind.ORDER_CREATED: "OrderCreated",
    EventKind.ORDER_CONFIRMED: "OrderConfirmed",
    EventKind.ORDER_PAID: "OrderPaid",
    EventKind.ORDER_FULLY_PAID: "OrderFullyPaid",
    EventKind.ORDER_REFUNDED: "OrderRefunded",
    EventKind.ORDER_FULLY_REFUNDED: "OrderFullyRefunded",
    EventKind.ORDER_CANCELLED: "OrderCancelled",
    EventKind.ORDER_FULFILLED: "OrderFulfilled",
    EventKind.ORDER_UPDATED: "OrderUpdated",
    EventKind.CUSTOMER_CREATED: "CustomerCreated",
    EventKind.CUSTOMER_UPDATED: "CustomerUpdated",
    EventKind.CUSTOMER_DELETED: "CustomerDeleted",
}


def subscription_query(kind: EventKind) -> str:
    typename = EVENT_TYPENAMES[kind]
    if kind.is_order:
        body, fragment = "order { ...CrmOrder }", ORDER_FRAGMENT
    else:
        body, fragment = "user { ...CrmCustomer }", CUSTOMER_FRAGMENT
    return (
        f"subscription {typename} {{\n  event {{{EVENT_HEADER}"
        f"    ... on {typename} {{ {body} }}\n  }}\n}}\n{fragment}"
    )


def all_subscriptions() -> dict[EventKind, str]:
    return {kind: subscription_query(kind) for kind in EVENT_TYPENAMES}
