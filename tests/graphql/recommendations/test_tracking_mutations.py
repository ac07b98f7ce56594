"""trackEvent and recommendationClicked: anonymous or signed-in, idempotent, clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.recommendations.models import StorefrontEvent
from tests.graphql.conftest import error_codes, make_customer, make_order
from tests.recommendations.builders import product

TRACK = """
mutation Track($kind: StorefrontEventKind!, $productId: ID!, $clientEventId: String,
               $anonymousId: String, $channel: String) {
  trackEvent(kind: $kind, productId: $productId, clientEventId: $clientEventId,
             anonymousId: $anonymousId, channel: $channel) {
    eventId
    errors { field code message }
  }
}
"""

CLICK = """
mutation Click($productId: ID!, $placement: String!, $modelRunId: ID, $clientEventId: String) {
  recommendationClicked(productId: $productId, placement: $placement, modelRunId: $modelRunId,
                        clientEventId: $clientEventId) {
    eventId
    errors { field code message }
  }
}
"""


def test_an_anonymous_view_is_stored(gql, saleor):
    make_order(None, 1)  # teaches the channel slug -> id mapping

    status, body = gql(
        TRACK,
        {
            "kind": "PRODUCT_VIEWED",
            "productId": product(1),
            "anonymousId": "visitor-1",
            "channel": "default-channel",
        },
    )

    assert status == 200 and body["data"]["trackEvent"]["errors"] == []
    event = StorefrontEvent.objects.get()
    assert (event.kind, event.anonymous_id, event.customer_id) == (
        "product_viewed",
        "visitor-1",
        None,
    )
    assert event.channel_id == to_global_id("Channel", 1)
    assert body["data"]["trackEvent"]["eventId"] == to_global_id("StorefrontEvent", event.pk)


def test_a_signed_in_click_is_linked_to_the_customer_from_the_token(gql, mint):
    customer = make_customer(5)
    variables = {"productId": product(1), "placement": "home", "clientEventId": "c-1"}

    first = gql(CLICK, variables, token=mint(customer.saleor_user_id))[1]
    retried = gql(CLICK, variables, token=mint(customer.saleor_user_id))[1]

    assert first["data"]["recommendationClicked"]["errors"] == []
    assert (
        first["data"]["recommendationClicked"]["eventId"]
        == retried["data"]["recommendationClicked"]["eventId"]
    )
    event = StorefrontEvent.objects.get()
    assert (event.kind, event.customer_id, event.placement) == (
        "recommendation_clicked",
        customer.pk,
        "home",
    )


@pytest.mark.parametrize(
    ("variables", "field", "code", "message"),
    [
        (
            {"productId": to_global_id("Order", 1), "placement": "home"},
            "productId",
            "INVALID",
            "Must receive a Product id, got Order.",
        ),
        (
            {"productId": product(1), "placement": ""},
            "placement",
            "REQUIRED",
            "placement is required.",
        ),
        (
            {"productId": product(1), "placement": "home", "modelRunId": "nonsense"},
            "modelRunId",
            "INVALID",
            None,
        ),
    ],
)
def test_bad_clicks_are_refused_with_field_errors(gql, saleor, variables, field, code, message):
    _, body = gql(CLICK, variables)

    errors = body["data"]["recommendationClicked"]["errors"]
    assert len(errors) == 1
    assert (errors[0]["field"], errors[0]["code"]) == (field, code)
    if message:
        assert errors[0]["message"] == message
    assert body["data"]["recommendationClicked"]["eventId"] is None
    assert not StorefrontEvent.objects.exists()


def test_a_future_event_is_refused(gql, saleor):
    query = """
    mutation ($id: ID!, $at: DateTime) {
      trackEvent(kind: ADDED_TO_CART, productId: $id, occurredAt: $at) {
        errors { field code message }
      }
    }
    """

    body = gql(query, {"id": product(1), "at": (timezone.now() + timedelta(days=2)).isoformat()})[1]

    assert body["data"]["trackEvent"]["errors"] == [
        {"field": "occurredAt", "code": "INVALID", "message": "occurredAt is in the future."}
    ]


def test_placement_stats_are_staff_only(gql, mint):
    query = '{ recommendationPlacementStats(since: "2026-01-01T00:00:00+00:00") { placement } }'

    customer_body = gql(query, token=mint(to_global_id("User", 1)))[1]
    staff_body = gql(query, token=mint.thirdparty(to_global_id("User", 900), ["MANAGE_PRODUCTS"]))[
        1
    ]

    assert error_codes(customer_body) == ["PermissionDenied"]
    assert staff_body["data"] == {"recommendationPlacementStats": []}
