"""Availability sync from Saleor (against its real schema) and merchant rules."""

from __future__ import annotations

import pytest

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.core.saleor_api import SaleorApiError, SaleorClient
from saleor_crm_plugin.recommendations import catalogue
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.recommendations.models import ProductAvailability, ProductRule
from tests.recommendations.builders import product

CH1, CH2 = to_global_id("Channel", 1), to_global_id("Channel", 2)


def saleor_catalogue(pages):
    """Answers CrmRecsChannels and, per channel slug, pages of (product, available)."""

    def root(query, variables, headers):
        if "CrmRecsChannels" in query:
            return {
                "channels": [
                    {"id": CH1, "slug": "default", "isActive": True},
                    {"id": CH2, "slug": "closed", "isActive": False},
                ]
            }
        slug, after = variables["channel"], variables.get("after")
        index = int(after or 0)
        listing = pages.get(slug, [[]])
        edges = [
            {"node": {"id": pid, "isAvailableForPurchase": available}}
            for pid, available in listing[index]
        ]
        more = index + 1 < len(listing)
        return {
            "products": {
                "pageInfo": {"hasNextPage": more, "endCursor": str(index + 1) if more else None},
                "edges": edges,
            }
        }

    return root


@pytest.mark.django_db
def test_sync_reads_every_page_and_channel(fake_saleor):
    fake_saleor.respond(
        saleor_catalogue(
            {
                "default": [[(product(1), True), (product(2), False)], [(product(3), True)]],
                "closed": [[(product(1), True)]],
            }
        )
    )

    report = catalogue.sync_availability(
        SaleorClient(fake_saleor.api_url, "token"), known_products=[product(1), product(9)]
    )

    state = {
        (row.product_id, row.channel_id): row.is_available
        for row in ProductAvailability.objects.all()
    }
    assert state == {
        (product(1), CH1): True,
        (product(2), CH1): False,
        (product(3), CH1): True,
        (product(9), CH1): False,  # we know it, the channel no longer lists it
        (product(1), CH2): False,  # inactive channel: nothing can be bought there
        (product(9), CH2): False,
    }
    assert (report.channels, report.unlisted) == (2, 2)
    posts = [r for r in fake_saleor.requests if r["method"] == "POST"]
    assert len(posts) == 1 + 2 + 1  # channels, two pages of "default", one of "closed"


@pytest.mark.django_db
def test_sync_is_idempotent(fake_saleor):
    fake_saleor.respond(saleor_catalogue({"default": [[(product(1), False)]]}))
    client = SaleorClient(fake_saleor.api_url, "token")

    catalogue.sync_availability(client)
    catalogue.sync_availability(client)

    assert ProductAvailability.objects.filter(channel_id=CH1).count() == 1


@pytest.mark.django_db
def test_a_failing_saleor_leaves_the_stored_state(fake_saleor):
    catalogue.set_availability(product(1), CH1, available=False)
    fake_saleor.respond(lambda q, v, h: (502, {}))

    with pytest.raises(SaleorApiError):
        catalogue.sync_availability(SaleorClient(fake_saleor.api_url, "token"))

    assert ProductAvailability.objects.get().is_available is False


@pytest.mark.django_db
def test_rules_validate_their_input():
    with pytest.raises(RecommendationError) as excinfo:
        catalogue.set_rule(product(1), boost=0)
    assert (excinfo.value.code, excinfo.value.field, excinfo.value.message) == (
        RecommendationErrorCode.INVALID,
        "boost",
        "boost must be greater than 0 and at most 100.",
    )
    with pytest.raises(RecommendationError) as excinfo:
        catalogue.set_availability("", CH1, available=True)
    assert excinfo.value.field == "product_id"
    assert not ProductRule.objects.exists() and not ProductAvailability.objects.exists()

    rule = catalogue.set_rule(product(1), boost=3.0, note="summer")
    again = catalogue.set_rule(product(1), blocked=True)

    assert rule.pk == again.pk
    assert (again.blocked, again.boost) == (True, 1.0)
