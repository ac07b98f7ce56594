"""What the recommendation domain knows about products: names (for reasons and reports),
availability per channel and merchant rules. Saleor owns the catalogue; we keep only these
facts, keyed by Saleor product ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from saleor_crm_plugin.core.saleor_api import SaleorClient, saleor_document
from saleor_crm_plugin.customers.models import OrderLine
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.recommendations.models import ProductAvailability, ProductRule

MAX_BOOST = 100.0


def product_names(product_ids: Iterable[str]) -> dict[str, str]:
    """Latest known name of each product, from the order lines that mention it."""
    ids = list(set(product_ids))
    names: dict[str, str] = {}
    rows = (
        OrderLine.objects.filter(product_id__in=ids)
        .exclude(product_name="")
        .order_by("product_id", "-pk")
        .values_list("product_id", "product_name")
    )
    for product_id, name in rows:
        names.setdefault(product_id, name)
    return names


_CHANNEL_IDS: dict[str, str] = {}


def channel_id_for(channel: str | None) -> str:
    """Saleor channel ID for a channel slug (what storefronts send), learnt from orders and
    cached per process (slugs rarely change). A value that is already a Channel ID, or a
    slug no order used yet, is returned as is: rankings then fall back to all channels."""
    if not channel:
        return ""
    if channel not in _CHANNEL_IDS:
        from saleor_crm_plugin.customers.models import Order

        found = (
            Order.objects.filter(channel_slug=channel)
            .order_by()
            .values_list("channel_id", flat=True)
            .first()
        )
        if found is None:
            return channel
        _CHANNEL_IDS[channel] = found
    return _CHANNEL_IDS[channel]


def set_availability(product_id: str, channel_id: str, *, available: bool) -> ProductAvailability:
    """Idempotent upsert, called from product events or a catalogue sync."""
    if not product_id or not channel_id:
        field = "product_id" if not product_id else "channel_id"
        raise RecommendationError(RecommendationErrorCode.REQUIRED, f"{field} is required.", field)
    row, _ = ProductAvailability.objects.update_or_create(
        product_id=product_id, channel_id=channel_id, defaults={"is_available": available}
    )
    return row


def set_rule(
    product_id: str, *, blocked: bool = False, boost: float = 1.0, note: str = ""
) -> ProductRule:
    """Blocklist or boost a product (boost 1.0 and not blocked = neutral)."""
    if not product_id:
        raise RecommendationError(
            RecommendationErrorCode.REQUIRED, "product_id is required.", "product_id"
        )
    if not 0 < boost <= MAX_BOOST:
        raise RecommendationError(
            RecommendationErrorCode.INVALID,
            f"boost must be greater than 0 and at most {MAX_BOOST:g}.",
            "boost",
        )
    row, _ = ProductRule.objects.update_or_create(
        product_id=product_id, defaults={"blocked": blocked, "boost": boost, "note": note}
    )
    return row


CHANNELS_QUERY = saleor_document(
    "CrmRecsChannels", "query CrmRecsChannels { channels { id slug isActive } }"
)
PRODUCTS_QUERY = saleor_document(
    "CrmRecsProductAvailability",
    """
query CrmRecsProductAvailability($channel: String!, $after: String) {
  products(first: 100, after: $after, channel: $channel) {
    pageInfo { hasNextPage endCursor }
    edges { node { id isAvailableForPurchase } }
  }
}""",
)


@dataclass
class CatalogueSyncReport:
    channels: int = 0
    available: int = 0
    unavailable: int = 0
    unlisted: int = 0  # products we recommend that the channel no longer lists
    per_channel: dict[str, int] = field(default_factory=dict)


def sync_availability(
    client: SaleorClient, *, known_products: Iterable[str] = ()
) -> CatalogueSyncReport:
    """Read every channel's product listing from Saleor (app token, so unpublished products
    are visible) and store whether each product can be bought there. ``known_products`` (the
    ones we might recommend) that a channel does not list are marked unavailable in it.

    Idempotent; a channel is written in one transaction only after it was read completely,
    so a failing call (``SaleorApiError``) leaves the previous state of that channel intact."""
    report = CatalogueSyncReport()
    known = set(known_products)
    for channel in client.execute(CHANNELS_QUERY).get("channels") or []:
        states: dict[str, bool] = {}
        after: str | None = None
        while True:
            data = client.execute(PRODUCTS_QUERY, {"channel": channel["slug"], "after": after})
            page = data.get("products") or {}
            for edge in page.get("edges") or []:
                node = edge["node"]
                states[node["id"]] = bool(node.get("isAvailableForPurchase"))
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                break
            after = info.get("endCursor")
        channel_active = bool(channel.get("isActive", True))
        for product_id in known - set(states):
            states[product_id] = False
            report.unlisted += 1
        with transaction.atomic():
            for product_id, available in states.items():
                ProductAvailability.objects.update_or_create(
                    product_id=product_id,
                    channel_id=channel["id"],
                    defaults={"is_available": available and channel_active},
                )
        report.channels += 1
        report.per_channel[channel["slug"]] = len(states)
        report.available += sum(1 for a in states.values() if a and channel_active)
        report.unavailable += sum(1 for a in states.values() if not (a and channel_active))
    return report
