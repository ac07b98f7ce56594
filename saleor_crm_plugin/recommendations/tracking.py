"""Storefront signals and what recommendations earned.

``track_event`` stores views, add-to-carts and recommendation impressions; ``record_click``
a click on a recommendation with its placement. Both are idempotent on the client's event id
(storefront beacons are retried). Revenue is attributed on read, last click wins: a paid
order line of the same product by the same customer within ``RECS_ATTRIBUTION_DAYS`` after a
click counts for that click's placement, net of refunded units. Computing it on read keeps
order handlers untouched and makes late refunds correct without any back-fill.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.recommendations.data import paid_lines
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.recommendations.models import (
    ModelRun,
    StorefrontEvent,
    StorefrontEventKind,
)

MAX_ID_LENGTH = 64
MAX_FUTURE_SKEW = timedelta(minutes=5)


def track_event(
    *,
    kind: str,
    product_id: str,
    customer: Customer | None = None,
    anonymous_id: str = "",
    channel_id: str = "",
    placement: str = "",
    run_id: int | None = None,
    client_event_id: str = "",
    occurred_at: datetime | None = None,
) -> StorefrontEvent:
    """Store one storefront event and return it (the existing row on a retried
    ``client_event_id``). Raises ``RecommendationError`` naming the bad field."""
    try:
        kind = StorefrontEventKind(kind)
    except ValueError:
        raise RecommendationError(
            RecommendationErrorCode.INVALID, f"Unknown event kind {kind!r}.", field="kind"
        ) from None
    if not product_id:
        raise RecommendationError(
            RecommendationErrorCode.REQUIRED, "productId is required.", field="product_id"
        )
    for name, value in (
        ("anonymous_id", anonymous_id),
        ("client_event_id", client_event_id),
        ("placement", placement),
    ):
        if len(value) > MAX_ID_LENGTH:
            raise RecommendationError(
                RecommendationErrorCode.INVALID,
                f"{name} must be at most {MAX_ID_LENGTH} characters.",
                field=name,
            )
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise RecommendationError(
            RecommendationErrorCode.INVALID, "occurredAt is in the future.", field="occurred_at"
        )
    if run_id is not None and not ModelRun.objects.filter(pk=run_id).exists():
        run_id = None  # an old page may name a pruned run; the click still counts
    if client_event_id:
        existing = StorefrontEvent.objects.filter(client_event_id=client_event_id).first()
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            return StorefrontEvent.objects.create(
                kind=kind,
                product_id=product_id,
                customer=customer,
                anonymous_id=anonymous_id,
                channel_id=channel_id,
                placement=placement,
                run_id=run_id,
                client_event_id=client_event_id,
                occurred_at=occurred_at,
            )
    except IntegrityError:
        # A concurrent retry with the same client id won the race.
        return StorefrontEvent.objects.get(client_event_id=client_event_id)


def record_click(
    *,
    product_id: str,
    placement: str,
    customer: Customer | None = None,
    anonymous_id: str = "",
    channel_id: str = "",
    run_id: int | None = None,
    client_event_id: str = "",
    occurred_at: datetime | None = None,
) -> StorefrontEvent:
    if not placement:
        raise RecommendationError(
            RecommendationErrorCode.REQUIRED, "placement is required.", field="placement"
        )
    return track_event(
        kind=StorefrontEventKind.RECOMMENDATION_CLICKED,
        product_id=product_id,
        customer=customer,
        anonymous_id=anonymous_id,
        channel_id=channel_id,
        placement=placement,
        run_id=run_id,
        client_event_id=client_event_id,
        occurred_at=occurred_at,
    )


@dataclass
class PlacementStats:
    placement: str
    impressions: int = 0
    clicks: int = 0
    attributed_orders: int = 0
    attributed_revenue: Decimal = Decimal(0)

    @property
    def click_through_rate(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


def placement_performance(
    *, since: datetime, until: datetime | None = None, channel_id: str = ""
) -> list[PlacementStats]:
    """Impressions, clicks, click-through and attributed revenue per placement for clicks
    between ``since`` and ``until``. Revenue is gross line totals of kept units, in the
    orders' currency (one currency per channel in Saleor)."""
    until = until or timezone.now()
    events = StorefrontEvent.objects.filter(
        occurred_at__gte=since,
        occurred_at__lt=until,
        kind__in=[
            StorefrontEventKind.RECOMMENDATION_SHOWN,
            StorefrontEventKind.RECOMMENDATION_CLICKED,
        ],
    ).exclude(placement="")
    if channel_id:
        events = events.filter(channel_id=channel_id)
    stats: dict[str, PlacementStats] = {}
    clicks: dict[tuple[int, str], list[tuple[datetime, str]]] = defaultdict(list)
    for kind, placement, customer_id, product_id, at in events.values_list(
        "kind", "placement", "customer_id", "product_id", "occurred_at"
    ):
        entry = stats.setdefault(placement, PlacementStats(placement))
        if kind == StorefrontEventKind.RECOMMENDATION_SHOWN:
            entry.impressions += 1
            continue
        entry.clicks += 1
        if customer_id is not None:
            clicks[(customer_id, product_id)].append((at, placement))
    if clicks:
        window = timedelta(days=crm_settings.RECS_ATTRIBUTION_DAYS)
        lines = paid_lines().filter(
            order__customer_id__in={c for c, _ in clicks},
            product_id__in={p for _, p in clicks},
            order__paid_at__gte=since,
            order__paid_at__lt=until + window,
        )
        orders: dict[str, set[int]] = defaultdict(set)
        for customer_id, product_id, order_id, paid_at, qty, refunded, total in lines.values_list(
            "order__customer_id",
            "product_id",
            "order_id",
            "order__paid_at",
            "quantity",
            "quantity_refunded",
            "total_price_gross",
        ):
            candidates = [
                (at, placement)
                for at, placement in clicks.get((customer_id, product_id), [])
                if at <= paid_at < at + window
            ]
            if not candidates or qty <= refunded:
                continue
            placement = max(candidates)[1]  # last click before the purchase
            kept = total * Decimal(qty - refunded) / Decimal(qty)
            stats[placement].attributed_revenue += kept.quantize(Decimal("0.001"))
            orders[placement].add(order_id)
        for placement, order_ids in orders.items():
            stats[placement].attributed_orders = len(order_ids)
    return sorted(stats.values(), key=lambda s: s.placement)
