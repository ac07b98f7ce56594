"""Storefront beacons. Anyone may send them (anonymous shoppers too); the customer is taken
from the token, never from the input, so nobody can write events into another's history."""

from __future__ import annotations

from typing import Any

import graphene

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.graphql.core.ids import resolve_global_id
from saleor_crm_plugin.graphql.core.mutations import BaseMutation, error_type
from saleor_crm_plugin.graphql.core.permissions import requester_of
from saleor_crm_plugin.graphql.recommendations.types import (
    RecommendationProductRule,
    StorefrontEventKindEnum,
)
from saleor_crm_plugin.permissions import RECOMMENDATIONS_MANAGE
from saleor_crm_plugin.recommendations import catalogue, tracking
from saleor_crm_plugin.recommendations.catalogue import channel_id_for
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.models import StorefrontEvent

RecommendationError = error_type("RecommendationError", RecommendationErrorCode)

_FIELD_NAMES = {
    "product_id": "productId",
    "anonymous_id": "anonymousId",
    "client_event_id": "clientEventId",
    "occurred_at": "occurredAt",
}


def _customer(info: Any) -> Customer | None:
    user_id = requester_of(info).user_id
    if not user_id:
        return None
    return Customer.objects.filter(saleor_user_id=user_id, erased_at__isnull=True).first()


def _run_pk(model_run_id: str | None) -> int | None:
    if not model_run_id:
        return None
    _, pk = resolve_global_id(model_run_id, "RecommendationModelRun", field="modelRunId")
    return int(pk) if pk.isdigit() else None


class _Beacon(BaseMutation):
    event_id = graphene.ID(description="ID of the stored event (the same on a retry).")

    class Meta:
        abstract = True

    @classmethod
    def error_of(cls, exc: Any) -> Any:
        error = super().error_of(exc)
        error.field = _FIELD_NAMES.get(error.field, error.field)
        return error

    @classmethod
    def answer(cls, event: StorefrontEvent) -> Any:
        return cls(event_id=graphene.relay.Node.to_global_id("StorefrontEvent", event.pk))


COMMON = {
    "product_id": graphene.ID(required=True, description="Saleor Product ID."),
    "channel": graphene.String(description="Channel slug."),
    "anonymous_id": graphene.String(
        description="The storefront's visitor id (max 64 characters) for anonymous shoppers."
    ),
    "client_event_id": graphene.String(
        description="Unique id chosen by the storefront; a retry with the same id is ignored."
    ),
    "occurred_at": graphene.DateTime(description="When it happened; defaults to now."),
}


class TrackEvent(_Beacon):
    class Arguments:
        kind = StorefrontEventKindEnum(required=True)
        placement = graphene.String(description="Placement of a shown/clicked recommendation.")
        model_run_id = graphene.ID(description="`modelRunId` of the recommendation, if any.")
        locals().update(COMMON)

    class Meta:
        description = (
            "Record a storefront event (product viewed, added to cart, recommendation shown or "
            "clicked). Signed-in customers are linked through their token."
        )
        error_type_class = RecommendationError

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> Any:
        resolve_global_id(data["product_id"], "Product", field="productId")
        kind = data["kind"]
        event = tracking.track_event(
            kind=getattr(kind, "value", kind),
            product_id=data["product_id"],
            customer=_customer(info),
            anonymous_id=data.get("anonymous_id") or "",
            channel_id=channel_id_for(data.get("channel")),
            placement=data.get("placement") or "",
            run_id=_run_pk(data.get("model_run_id")),
            client_event_id=data.get("client_event_id") or "",
            occurred_at=data.get("occurred_at"),
        )
        return cls.answer(event)


class RecommendationClicked(_Beacon):
    class Arguments:
        placement = graphene.String(required=True, description="Where the product was shown.")
        model_run_id = graphene.ID(description="`modelRunId` of the clicked recommendation.")
        locals().update(COMMON)

    class Meta:
        description = (
            "Record a click on a recommendation: the basis of click-through rates and of revenue "
            "attributed to each placement (last click within the attribution window)."
        )
        error_type_class = RecommendationError

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> Any:
        resolve_global_id(data["product_id"], "Product", field="productId")
        event = tracking.record_click(
            product_id=data["product_id"],
            placement=data["placement"],
            customer=_customer(info),
            anonymous_id=data.get("anonymous_id") or "",
            channel_id=channel_id_for(data.get("channel")),
            run_id=_run_pk(data.get("model_run_id")),
            client_event_id=data.get("client_event_id") or "",
            occurred_at=data.get("occurred_at"),
        )
        return cls.answer(event)


class RecommendationProductRuleSet(BaseMutation):
    rule = graphene.Field(RecommendationProductRule)

    class Arguments:
        product_id = graphene.ID(required=True, description="Saleor Product ID.")
        blocked = graphene.Boolean(default_value=False, description="Never recommend this product.")
        boost = graphene.Float(
            default_value=1.0, description="Score multiplier, greater than 0 and at most 100."
        )
        note = graphene.String(default_value="", description="Why (for other operators).")

    class Meta:
        description = (
            "Block or boost a product in every recommendation list (takes effect within "
            "CRM_RECS_RULES_CACHE_SECONDS, no retraining)."
        )
        permissions = (RECOMMENDATIONS_MANAGE,)
        error_type_class = RecommendationError

    @classmethod
    def error_of(cls, exc: Any) -> Any:
        error = super().error_of(exc)
        error.field = _FIELD_NAMES.get(error.field, error.field)
        return error

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> Any:
        resolve_global_id(data["product_id"], "Product", field="productId")
        rule = catalogue.set_rule(
            data["product_id"],
            blocked=data.get("blocked", False),
            boost=data.get("boost", 1.0),
            note=(data.get("note") or "")[:255],
        )
        return cls(rule=rule)


class RecommendationTrain(BaseMutation):
    queued = graphene.Boolean(required=True)

    class Meta:
        description = (
            "Train, evaluate and (if it beats the baselines) promote a new model now, on the "
            "ml queue. The run appears in recommendationModelRuns."
        )
        permissions = (RECOMMENDATIONS_MANAGE,)
        error_type_class = RecommendationError

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> Any:
        from django.db import transaction

        from saleor_crm_plugin.tasks.recommendations import train_recommendations_task

        transaction.on_commit(lambda: train_recommendations_task.delay(trigger="staff"))
        return cls(queued=True)
