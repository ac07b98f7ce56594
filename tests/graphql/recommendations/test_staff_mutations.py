"""Operators block/boost products and start training from the API."""

from __future__ import annotations

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.recommendations.models import ModelRun, ProductRule
from tests.graphql.conftest import error_codes
from tests.recommendations.builders import product

RULE = """
mutation ($id: ID!, $blocked: Boolean, $boost: Float) {
  recommendationProductRuleSet(productId: $id, blocked: $blocked, boost: $boost, note: "x") {
    rule { productId blocked boost note }
    errors { field code message }
  }
}
"""


def staff(mint):
    return mint.thirdparty(to_global_id("User", 900), ["MANAGE_PRODUCTS"])


def test_staff_block_a_product(gql, mint):
    body = gql(RULE, {"id": product(1), "blocked": True}, token=staff(mint))[1]

    assert body["data"]["recommendationProductRuleSet"] == {
        "rule": {"productId": product(1), "blocked": True, "boost": 1.0, "note": "x"},
        "errors": [],
    }
    assert ProductRule.objects.get().blocked is True


def test_a_bad_boost_is_a_field_error_and_changes_nothing(gql, mint):
    body = gql(RULE, {"id": product(1), "boost": 0.0}, token=staff(mint))[1]

    assert body["data"]["recommendationProductRuleSet"] == {
        "rule": None,
        "errors": [
            {
                "field": "boost",
                "code": "INVALID",
                "message": "boost must be greater than 0 and at most 100.",
            }
        ],
    }
    assert not ProductRule.objects.exists()


def test_customers_cannot_set_rules(gql, mint):
    body = gql(RULE, {"id": product(1), "blocked": True}, token=mint(to_global_id("User", 1)))[1]

    assert error_codes(body) == ["PermissionDenied"]
    assert not ProductRule.objects.exists()


def test_staff_start_a_training_run(gql, mint, shop, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = gql(
            "mutation { recommendationTrain { queued errors { code } } }", token=staff(mint)
        )[1]

    assert body["data"]["recommendationTrain"] == {"queued": True, "errors": []}
    assert ModelRun.objects.get().trigger == "staff"
