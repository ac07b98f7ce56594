"""Recommendation root fields. Resolvers authorise, translate ids and call the services."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import graphene
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.graphql.core.connection import connection_field, paginate_queryset
from saleor_crm_plugin.graphql.core.ids import resolve_global_id
from saleor_crm_plugin.graphql.core.permissions import check_permissions, requester_of
from saleor_crm_plugin.graphql.customers.dataloaders import CUSTOMERS
from saleor_crm_plugin.graphql.recommendations.mutations import (
    RecommendationClicked,
    RecommendationProductRuleSet,
    RecommendationTrain,
    TrackEvent,
)
from saleor_crm_plugin.graphql.recommendations.types import (
    ProductRecommendation,
    RecommendationModelRun,
    RecommendationModelRunCountableConnection,
    RecommendationPlacementStats,
    Served,
)
from saleor_crm_plugin.permissions import RECOMMENDATIONS_MANAGE
from saleor_crm_plugin.recommendations import serving, tracking
from saleor_crm_plugin.recommendations.catalogue import channel_id_for
from saleor_crm_plugin.recommendations.models import ModelRun

FIRST = graphene.Int(default_value=10, description="How many products (1-100).")
CHANNEL = graphene.String(description="Slug of the channel the storefront shows.")


def _customer(info: Any) -> Customer | None:
    user_id = requester_of(info).user_id
    if not user_id:
        return None
    # Every storefront request starts here: read through the precompiled reader (core/rows.py).
    rows = CUSTOMERS.fetch(
        "t.saleor_user_id = %s AND t.erased_at IS NULL",
        [user_id],
        only=serving.CUSTOMER_READS,
    )
    return rows[0] if rows else None


def _served(recs: list[serving.Recommendation], channel: str | None) -> list[Served]:
    return [Served(rec, channel) for rec in recs]


def _product_id(product_id: str) -> str:
    resolve_global_id(product_id, "Product", field="productId")
    return product_id


class RecommendationQueries(graphene.ObjectType):
    recommendations = graphene.Field(
        graphene.NonNull(graphene.List(graphene.NonNull(ProductRecommendation))),
        channel=CHANNEL,
        first=FIRST,
        placement=graphene.String(
            description="Where the list is shown (`home`, `cart`, ...); echo it in clicks."
        ),
        description=(
            "Personal recommendations for the signed-in customer (one without orders is "
            "scored from their country); popular products for anonymous shoppers and "
            "customers nothing is known about yet."
        ),
    )
    similar_products = graphene.Field(
        graphene.NonNull(graphene.List(graphene.NonNull(ProductRecommendation))),
        product_id=graphene.ID(required=True, description="Saleor Product ID."),
        channel=CHANNEL,
        first=FIRST,
        description="Products like this one (cosine similarity of learned embeddings).",
    )
    bought_together = graphene.Field(
        graphene.NonNull(graphene.List(graphene.NonNull(ProductRecommendation))),
        product_id=graphene.ID(required=True, description="Saleor Product ID."),
        channel=CHANNEL,
        first=FIRST,
        description="Products frequently bought in the same order as this one.",
    )
    recommendation_model_runs = connection_field(
        RecommendationModelRunCountableConnection,
        description="Training runs, newest first. Requires MANAGE_PRODUCTS.",
    )
    recommendation_model_run = graphene.Field(
        RecommendationModelRun,
        id=graphene.ID(required=True),
        description="One training run. Requires MANAGE_PRODUCTS.",
    )
    recommendation_placement_stats = graphene.Field(
        graphene.NonNull(graphene.List(graphene.NonNull(RecommendationPlacementStats))),
        since=graphene.DateTime(required=True),
        until=graphene.DateTime(),
        channel=CHANNEL,
        description=(
            "Impressions, clicks and attributed revenue per placement. Requires MANAGE_PRODUCTS."
        ),
    )

    @staticmethod
    def resolve_recommendations(
        root: Any,
        info: Any,
        first: int = 10,
        channel: str | None = None,
        placement: str | None = None,
    ) -> list[Served]:
        recs = serving.recommend(
            customer=_customer(info), channel_id=channel_id_for(channel), first=first
        )
        return _served(recs, channel)

    @staticmethod
    def resolve_similar_products(
        root: Any, info: Any, product_id: str, first: int = 10, channel: str | None = None
    ) -> list[Served]:
        recs = serving.similar_products(
            _product_id(product_id), channel_id=channel_id_for(channel), first=first
        )
        return _served(recs, channel)

    @staticmethod
    def resolve_bought_together(
        root: Any, info: Any, product_id: str, first: int = 10, channel: str | None = None
    ) -> list[Served]:
        recs = serving.bought_together(
            _product_id(product_id), channel_id=channel_id_for(channel), first=first
        )
        return _served(recs, channel)

    @staticmethod
    def resolve_recommendation_model_runs(root: Any, info: Any, **args: Any) -> Any:
        check_permissions(requester_of(info), (RECOMMENDATIONS_MANAGE,))
        return paginate_queryset(
            ModelRun.objects.all(),
            args,
            ordering=("-started_at", "-pk"),
            connection_type=RecommendationModelRunCountableConnection,
            field_name="recommendationModelRuns",
        )

    @staticmethod
    def resolve_recommendation_model_run(root: Any, info: Any, id: str) -> ModelRun | None:
        check_permissions(requester_of(info), (RECOMMENDATIONS_MANAGE,))
        _, pk = resolve_global_id(id, "RecommendationModelRun")
        return ModelRun.objects.filter(pk=pk).first() if pk.isdigit() else None

    @staticmethod
    def resolve_recommendation_placement_stats(
        root: Any,
        info: Any,
        since: datetime,
        until: datetime | None = None,
        channel: str | None = None,
    ) -> list[tracking.PlacementStats]:
        check_permissions(requester_of(info), (RECOMMENDATIONS_MANAGE,))
        return tracking.placement_performance(
            since=since, until=until or timezone.now(), channel_id=channel_id_for(channel)
        )


class RecommendationMutations(graphene.ObjectType):
    track_event = TrackEvent.Field()
    recommendation_clicked = RecommendationClicked.Field()
    recommendation_product_rule_set = RecommendationProductRuleSet.Field()
    recommendation_train = RecommendationTrain.Field()
