"""Import existing customers and orders from Saleor's GraphQL API.

The same snapshots and the same inbox as live events: each object becomes a ``CrmEvent``
(source ``backfill``) keyed on its id and ``updatedAt``, so a re-run stores only what changed
and live webhooks arriving meanwhile are merged by the usual newest-``updatedAt``-wins rule.
Progress is saved after every page; an interrupted run resumes from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from saleor_crm_plugin.core.saleor_api import SaleorClient, normalize_api_url, saleor_document
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.from_webhook import (
    parse_subscription_customer,
    parse_subscription_order,
)
from saleor_crm_plugin.events.models import BackfillProgress
from saleor_crm_plugin.events.saleor_fragments import CUSTOMER_FRAGMENT, ORDER_FRAGMENT
from saleor_crm_plugin.events.types import CrmEvent, EventKind, EventSource, stable_hash

logger = logging.getLogger(__name__)

PAGE_INFO = "totalCount pageInfo { hasNextPage endCursor }"

CUSTOMERS_QUERY = saleor_document(
    "CrmBackfillCustomers",
    f"""
query CrmBackfillCustomers($first: Int!, $after: String) {{
  customers(first: $first, after: $after, sortBy: {{field: CREATED_AT, direction: ASC}}) {{
    {PAGE_INFO}
    edges {{ node {{ ...CrmCustomer }} }}
  }}
}}
{CUSTOMER_FRAGMENT}""",
)

ORDERS_QUERY = saleor_document(
    "CrmBackfillOrders",
    f"""
query CrmBackfillOrders($first: Int!, $after: String) {{
  orders(first: $first, after: $after, sortBy: {{field: CREATED_AT, direction: ASC}}) {{
    {PAGE_INFO}
    edges {{ node {{ ...CrmOrder }} }}
  }}
}}
{ORDER_FRAGMENT}""",
)

RESOURCES = ("customers", "orders")
_QUERIES = {"customers": CUSTOMERS_QUERY, "orders": ORDERS_QUERY}


@dataclass
class BackfillReport:
    resource: str
    fetched: int = 0
    stored: int = 0
    total: int | None = None
    resumed_from: str = ""


def _event_for(resource: str, node: dict, api_url: str) -> CrmEvent:
    issued_at = timezone.now()
    if resource == "customers":
        customer = parse_subscription_customer(node)
        key = stable_hash("backfill", api_url, customer.saleor_user_id, str(node.get("updatedAt")))
        return CrmEvent(
            kind=EventKind.CUSTOMER_UPDATED,
            source=EventSource.BACKFILL,
            object_id=customer.saleor_user_id,
            issued_at=issued_at,
            saleor_api_url=api_url,
            customer=customer,
            dedupe_key=key,
        )
    order = parse_subscription_order(node, kind=EventKind.ORDER_UPDATED, issued_at=issued_at)
    key = stable_hash("backfill", api_url, order.saleor_order_id, str(node.get("updatedAt")))
    return CrmEvent(
        kind=EventKind.ORDER_UPDATED,
        source=EventSource.BACKFILL,
        object_id=order.saleor_order_id,
        issued_at=issued_at,
        saleor_api_url=api_url,
        order=order,
        dedupe_key=key,
    )


def backfill(
    saleor_url: str,
    token: str,
    *,
    resources: tuple[str, ...] = RESOURCES,
    page_size: int = 100,
    restart: bool = False,
    process_inline: bool = False,
    on_page: Callable[[str, int, int | None], None] | None = None,
    client: SaleorClient | None = None,
) -> list[BackfillReport]:
    """Import ``resources`` page by page. ``on_page(resource, fetched_so_far, total)`` drives
    a progress bar. With ``process_inline`` events are applied in this process (no worker
    needed); otherwise workers pick them up like live events."""
    api_url = normalize_api_url(saleor_url)
    client = client or SaleorClient(api_url, token)
    if not 1 <= page_size <= 100:
        raise ValueError("page_size must be between 1 and 100 (Saleor's limit).")
    reports = []
    for resource in resources:
        if resource not in _QUERIES:
            raise ValueError(f"Unknown resource {resource!r}; choose from {', '.join(RESOURCES)}.")
        reports.append(
            _backfill_resource(
                client, api_url, resource, page_size, restart, process_inline, on_page
            )
        )
    return reports


def _backfill_resource(
    client: SaleorClient,
    api_url: str,
    resource: str,
    page_size: int,
    restart: bool,
    process_inline: bool,
    on_page: Callable[[str, int, int | None], None] | None,
) -> BackfillReport:
    progress, _ = BackfillProgress.objects.get_or_create(saleor_api_url=api_url, resource=resource)
    if restart or progress.finished_at is not None:
        progress.cursor, progress.processed, progress.finished_at = "", 0, None
        progress.started_at = timezone.now()
        progress.save()
    report = BackfillReport(resource=resource, resumed_from=progress.cursor)
    cursor = progress.cursor or None
    while True:
        data = client.execute(_QUERIES[resource], {"first": page_size, "after": cursor})
        connection = data.get(resource) or {}
        edges = connection.get("edges") or []
        report.total = connection.get("totalCount")
        with transaction.atomic():
            for edge in edges:
                event = _event_for(resource, edge["node"], api_url)
                if inbox.store_event(event, kick=not process_inline) is not None:
                    report.stored += 1
            page_info = connection.get("pageInfo") or {}
            cursor = page_info.get("endCursor") or cursor
            progress.cursor = cursor or ""
            progress.processed += len(edges)
            progress.total = report.total
            if not page_info.get("hasNextPage"):
                progress.finished_at = timezone.now()
            progress.save()
        report.fetched += len(edges)
        if process_inline:
            inbox.process_pending()
        if on_page:
            on_page(resource, progress.processed, report.total)
        if not page_info.get("hasNextPage") or not edges:
            break
    return report
