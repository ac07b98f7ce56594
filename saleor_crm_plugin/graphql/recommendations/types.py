"""Recommendation types: products as federated ``Product`` references with a score and a
reason, and model runs with their holdout metrics for staff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import graphene

from saleor_crm_plugin.graphql.core.connection import CountableConnection
from saleor_crm_plugin.graphql.core.federation import EntityRef
from saleor_crm_plugin.graphql.core.mutations import graphql_enum
from saleor_crm_plugin.recommendations.models import (
    ModelRun,
    RunDecision,
    RunStatus,
    StorefrontEventKind,
)
from saleor_crm_plugin.recommendations.serving import Reason, Recommendation


@dataclass(frozen=True)
class Served:
    """A recommendation plus the channel slug it was asked for (the Product key)."""

    rec: Recommendation
    channel: str | None


RecommendationReasonEnum = graphql_enum(Reason, "Why a product was recommended.")
RecommendationRunStatusEnum = graphql_enum(RunStatus, "State of a training run.")
RecommendationRunDecisionEnum = graphql_enum(
    RunDecision, "What a training run decided: serve the model or fall back to popularity."
)
StorefrontEventKindEnum = graphql_enum(StorefrontEventKind, "A storefront signal.")


def _product_type() -> type:
    from saleor_crm_plugin.graphql.customers.types import Product

    return Product


class ProductRecommendation(graphene.ObjectType):
    product = graphene.Field(
        _product_type,
        required=True,
        description="The recommended Saleor product (a federation reference: id and channel).",
    )
    product_id = graphene.ID(required=True, description="Saleor Product ID.")
    score = graphene.Float(
        required=True, description="Ranking score; comparable only within one list."
    )
    reason = graphene.Field(RecommendationReasonEnum, required=True)
    explanation = graphene.String(required=True, description="Human-readable reason.")
    because_of = graphene.Field(
        _product_type,
        description="The product that explains the pick (a past purchase, or the viewed product).",
    )
    model_run_id = graphene.ID(
        description="The model run that produced it; send it back with recommendationClicked."
    )

    class Meta:
        description = "A recommended product with its score and the reason it was picked."

    @staticmethod
    def resolve_product(root: Served, info: Any) -> EntityRef:
        return EntityRef("Product", root.rec.product_id, root.channel)

    @staticmethod
    def resolve_product_id(root: Served, info: Any) -> str:
        return root.rec.product_id

    @staticmethod
    def resolve_score(root: Served, info: Any) -> float:
        return round(root.rec.score, 6)

    @staticmethod
    def resolve_reason(root: Served, info: Any) -> str:
        return root.rec.reason.value

    @staticmethod
    def resolve_explanation(root: Served, info: Any) -> str:
        return root.rec.explanation

    @staticmethod
    def resolve_because_of(root: Served, info: Any) -> EntityRef | None:
        return (
            EntityRef("Product", root.rec.because_of, root.channel) if root.rec.because_of else None
        )

    @staticmethod
    def resolve_model_run_id(root: Served, info: Any) -> str | None:
        if root.rec.run_id is None:
            return None
        return graphene.relay.Node.to_global_id("RecommendationModelRun", root.rec.run_id)


class RecommendationMetrics(graphene.ObjectType):
    scorer = graphene.String(
        required=True,
        description="`model` (served score), `lightfm` (raw), `popularity` or `buy_again`.",
    )
    precision = graphene.Float(required=True, description="Precision@10.")
    recall = graphene.Float(required=True, description="Recall@10.")
    ndcg = graphene.Float(required=True, description="NDCG@10.")
    map = graphene.Float(required=True, description="MAP@10.")
    coverage = graphene.Float(required=True, description="Share of products recommended.")

    class Meta:
        description = "Offline metrics on the time-based holdout (each customer's last order)."


class RecommendationModelRun(graphene.ObjectType):
    status = graphene.Field(RecommendationRunStatusEnum, required=True)
    decision = graphene.Field(RecommendationRunDecisionEnum, required=True)
    is_active = graphene.Boolean(required=True, description="Whether this run serves now.")
    trigger = graphene.String(required=True)
    algorithm = graphene.String(required=True)
    params = graphene.JSONString(required=True, description="Training parameters.")
    customer_count = graphene.Int(required=True)
    product_count = graphene.Int(required=True)
    interaction_count = graphene.Int(required=True)
    test_customer_count = graphene.Int(required=True)
    event_count = graphene.Int(
        required=True,
        description="Storefront events (views, add-to-carts) that joined the fit; 0 when off.",
    )
    metrics = graphene.List(graphene.NonNull(RecommendationMetrics), required=True)
    reason = graphene.String(required=True)
    error = graphene.String(required=True)
    duration_seconds = graphene.Float(required=True)
    timings = graphene.JSONString(required=True)
    data_until = graphene.DateTime()
    started_at = graphene.DateTime(required=True)
    finished_at = graphene.DateTime()

    class Meta:
        interfaces = (graphene.relay.Node,)
        description = "A recommendation training run. Requires MANAGE_PRODUCTS."

    @staticmethod
    def resolve_customer_count(root: ModelRun, info: Any) -> int:
        return root.n_users

    @staticmethod
    def resolve_product_count(root: ModelRun, info: Any) -> int:
        return root.n_items

    @staticmethod
    def resolve_interaction_count(root: ModelRun, info: Any) -> int:
        return root.n_interactions

    @staticmethod
    def resolve_test_customer_count(root: ModelRun, info: Any) -> int:
        return root.n_test_users

    @staticmethod
    def resolve_event_count(root: ModelRun, info: Any) -> int:
        return root.n_events

    @staticmethod
    def resolve_metrics(root: ModelRun, info: Any) -> list[RecommendationMetrics]:
        return [
            RecommendationMetrics(scorer=name, **values)
            for name, values in sorted(root.metrics.items())
        ]


class RecommendationModelRunCountableConnection(CountableConnection):
    class Meta:
        node = RecommendationModelRun


class RecommendationPlacementStats(graphene.ObjectType):
    placement = graphene.String(required=True)
    impressions = graphene.Int(required=True)
    clicks = graphene.Int(required=True)
    click_through_rate = graphene.Float(required=True)
    attributed_orders = graphene.Int(required=True)
    attributed_revenue = graphene.Decimal(
        required=True, description="Gross value of kept units bought within the window."
    )

    class Meta:
        description = "Click-through and last-click attributed revenue of a placement."


class RecommendationProductRule(graphene.ObjectType):
    product_id = graphene.ID(required=True)
    blocked = graphene.Boolean(required=True)
    boost = graphene.Float(required=True)
    note = graphene.String(required=True)
    updated_at = graphene.DateTime(required=True)

    class Meta:
        description = "A merchant's blocklist entry or boost for one product."
