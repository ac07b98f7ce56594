"""The storefront and staff recommendation fields, end to end through /graphql/."""

from __future__ import annotations

import pytest

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.recommendations import services
from saleor_crm_plugin.recommendations.models import ProductAssociation, ProductRule
from tests.graphql.conftest import error_codes
from tests.recommendations.builders import product

RECOMMENDATIONS = """
query Recs($channel: String, $first: Int) {
  recommendations(channel: $channel, first: $first, placement: "home") {
    product { id channel }
    productId score reason explanation
    becauseOf { id }
    modelRunId
  }
}
"""


@pytest.fixture
def trained(shop):
    return services.train_model()


def test_signed_in_customer_gets_personal_recommendations(gql, mint, shop, trained):
    customer = shop.customers[0]

    status, body = gql(
        RECOMMENDATIONS, {"channel": "default", "first": 5}, token=mint(customer.saleor_user_id)
    )

    assert status == 200 and "errors" not in body
    recs = body["data"]["recommendations"]
    assert len(recs) == 5
    assert all(r["reason"] in ("PERSONAL", "BUY_AGAIN") for r in recs)
    assert all(r["product"] == {"id": r["productId"], "channel": "default"} for r in recs)
    assert {r["modelRunId"] for r in recs} == {to_global_id("RecommendationModelRun", trained.pk)}
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)


def test_anonymous_shoppers_get_popular_products(gql, saleor, trained):
    status, body = gql(RECOMMENDATIONS, {"first": 3})

    assert status == 200
    recs = body["data"]["recommendations"]
    assert [r["reason"] for r in recs] == ["POPULAR"] * 3
    assert all(r["modelRunId"] is None and r["product"]["channel"] is None for r in recs)


def test_first_out_of_range_is_a_clear_error(gql, saleor, trained):
    status, body = gql(RECOMMENDATIONS, {"first": 0})

    assert status == 200
    assert body["data"] is None
    assert body["errors"][0]["message"] == "first must be between 1 and 100."
    assert error_codes(body) == ["INVALID"]


def test_similar_products_and_bought_together(gql, saleor, shop, trained):
    ProductAssociation.objects.all().delete()
    ProductAssociation.objects.create(
        product_id=product(1), other_product_id=product(2), support=5, confidence=0.5, lift=2.5
    )
    ProductRule.objects.create(product_id=product(3), blocked=True)
    query = """
    query ($id: ID!) {
      similarProducts(productId: $id, first: 4) { productId reason becauseOf { id } }
      boughtTogether(productId: $id) { productId score reason explanation }
    }
    """

    status, body = gql(query, {"id": product(1)})

    assert status == 200 and "errors" not in body
    similar = body["data"]["similarProducts"]
    assert len(similar) == 4
    assert {s["reason"] for s in similar} == {"SIMILAR"}
    assert product(1) not in {s["productId"] for s in similar}
    assert product(3) not in {s["productId"] for s in similar}
    assert body["data"]["boughtTogether"] == [
        {
            "productId": product(2),
            "score": 0.5,
            "reason": "BOUGHT_TOGETHER",
            "explanation": "Bought together in 5 orders (lift 2.5)",
        }
    ]


def test_similar_products_refuses_a_non_product_id(gql, saleor):
    _, body = gql(
        "query ($id: ID!) { similarProducts(productId: $id) { productId } }",
        {"id": to_global_id("Order", 1)},
    )

    assert body["data"] is None
    assert body["errors"][0]["message"] == "Must receive a Product id, got Order."


MODEL_RUNS = """
{
  recommendationModelRuns(first: 5) {
    totalCount
    edges { node {
      id status decision isActive customerCount productCount interactionCount eventCount
      metrics { scorer ndcg precision }
      params reason
    } }
  }
}
"""


def test_staff_see_model_runs_and_their_metrics(gql, mint, shop, trained):
    token = mint.thirdparty(to_global_id("User", 900), ["MANAGE_PRODUCTS"])

    status, body = gql(MODEL_RUNS, token=token)

    assert status == 200 and "errors" not in body
    connection = body["data"]["recommendationModelRuns"]
    assert connection["totalCount"] == 1
    node = connection["edges"][0]["node"]
    assert node["id"] == to_global_id("RecommendationModelRun", trained.pk)
    assert (node["status"], node["decision"], node["isActive"]) == ("SUCCEEDED", "PROMOTED", True)
    assert (node["customerCount"], node["productCount"], node["eventCount"]) == (120, 90, 0)
    scorers = {m["scorer"]: m for m in node["metrics"]}
    assert set(scorers) == {"model", "lightfm", "popularity", "buy_again"}
    assert scorers["model"]["ndcg"] == pytest.approx(trained.metrics["model"]["ndcg"])
    assert '"components": 16' in node["params"]


def test_model_runs_are_staff_only(gql, mint, shop, trained):
    _, body = gql(MODEL_RUNS, token=mint(shop.customers[0].saleor_user_id))

    assert body["data"]["recommendationModelRuns"] is None
    assert error_codes(body) == ["PermissionDenied"]
