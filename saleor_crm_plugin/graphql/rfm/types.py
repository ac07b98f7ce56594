"""RFM types, and the ``rfm`` field added to ``CrmCustomer`` (see ``graphql/extensions.py``)."""

from __future__ import annotations

from typing import Any

import graphene
from promise import Promise

from saleor_crm_plugin.graphql.core.connection import CountableConnection
from saleor_crm_plugin.graphql.core.mutations import graphql_enum
from saleor_crm_plugin.graphql.core.permissions import check_permissions, requester_of
from saleor_crm_plugin.graphql.core.types import CrmMoney, money
from saleor_crm_plugin.graphql.rfm.dataloaders import (
    LatestRunByChannelLoader,
    RfmByCustomerIdLoader,
)
from saleor_crm_plugin.permissions import RFM_READ
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.models import CustomerRfm, RfmRun, RfmRunKind
from saleor_crm_plugin.rfm.segments import SegmentMap, names_from_json

RfmRunKindEnum = graphql_enum(RfmRunKind, "How a run aggregated the orders.")


class CrmRfmRun(graphene.ObjectType):
    id = graphene.ID(required=True)
    channel_id = graphene.ID(required=True, description="Saleor Channel ID.")
    channel_slug = graphene.String(required=True)
    kind = graphene.Field(RfmRunKindEnum, required=True)
    as_of = graphene.DateTime(required=True, description="The moment the run scored as of.")
    frequency_window_days = graphene.Int(
        description="Days of orders counted in frequency and monetary; null = lifetime."
    )
    recency_cuts = graphene.List(
        graphene.NonNull(graphene.Int),
        required=True,
        description=(
            "Days since the last paid order at the 20/40/60/80th percentiles: more days than "
            "the n-th cut point lowers R by n (R5 = at most the first cut point)."
        ),
    )
    frequency_cuts = graphene.List(
        graphene.NonNull(graphene.Int),
        required=True,
        description="Paid orders at the 20/40/60/80th percentiles (F = 1 + cut points exceeded).",
    )
    monetary_cuts = graphene.List(
        graphene.NonNull(graphene.Float),
        required=True,
        description="Money kept at the 20/40/60/80th percentiles (M = 1 + cut points exceeded).",
    )
    customer_count = graphene.Int(required=True)
    recomputed_count = graphene.Int(
        required=True, description="Customers whose orders were re-aggregated by this run."
    )
    changed_count = graphene.Int(required=True, description="Customers whose scores changed.")
    moved_count = graphene.Int(
        required=True, description="Customers who moved from one segment to another."
    )
    started_at = graphene.DateTime(required=True)
    finished_at = graphene.DateTime()
    duration_ms = graphene.Int(required=True)

    class Meta:
        description = "One scoring of a channel, with the cut points that explain its scores."

    @staticmethod
    def resolve_id(root: RfmRun, info: Any) -> str:
        return str(root.pk)

    @staticmethod
    def resolve_monetary_cuts(root: RfmRun, info: Any) -> list[float]:
        return [float(c) for c in root.monetary_cuts]


class CrmRfm(graphene.ObjectType):
    channel_id = graphene.ID(required=True, description="Saleor Channel ID.")
    channel_slug = graphene.String(required=True)
    recency_days = graphene.Int(
        description="Whole days from the last paid order to the run's as-of time."
    )
    frequency = graphene.Int(required=True, description="Paid orders in the frequency window.")
    monetary = graphene.Field(
        CrmMoney,
        required=True,
        description="Money kept from those orders (refunds deducted).",
    )
    r_score = graphene.Int(required=True, description="1-5; 5 = bought most recently.")
    f_score = graphene.Int(required=True)
    m_score = graphene.Int(required=True)
    scores = graphene.String(required=True, description='"R5F4M3".')
    segment = graphene.String(required=True, description="Segment key, e.g. `champions`.")
    segment_name = graphene.String(required=True, description='Display name, e.g. "Champions".')
    last_paid_at = graphene.DateTime(required=True)
    run = graphene.Field(CrmRfmRun, description="The run the scores come from.")

    class Meta:
        description = "A customer's RFM metrics, quintile scores and segment in one channel."

    @staticmethod
    def resolve_monetary(root: CustomerRfm, info: Any) -> Any:
        return money(root.monetary, root.currency)

    @staticmethod
    def resolve_run(root: CustomerRfm, info: Any) -> Promise:
        return LatestRunByChannelLoader(info.context).load(root.channel_id)

    @staticmethod
    def resolve_recency_days(root: CustomerRfm, info: Any) -> Promise:
        return (
            LatestRunByChannelLoader(info.context)
            .load(root.channel_id)
            .then(lambda run: services.recency_days(root, run) if run else None)
        )

    @staticmethod
    def resolve_segment_name(root: CustomerRfm, info: Any) -> Promise:
        return (
            LatestRunByChannelLoader(info.context)
            .load(root.channel_id)
            .then(
                lambda run: names_from_json(run.segment_names if run else []).get(
                    root.segment, root.segment
                )
            )
        )


class CrmRfmSegmentCustomer(CrmRfm):
    customer = graphene.Field(
        "saleor_crm_plugin.graphql.customers.types.CrmCustomer", required=True
    )

    class Meta:
        description = "A customer in an RFM segment list."

    @staticmethod
    def resolve_customer(root: CustomerRfm, info: Any) -> Any:
        return root.customer


class CrmRfmSegmentCustomerCountableConnection(CountableConnection):
    class Meta:
        node = CrmRfmSegmentCustomer


class CrmRfmSegmentSummary(graphene.ObjectType):
    segment = graphene.String(required=True)
    name = graphene.String(required=True)
    customers = graphene.Int(required=True)
    revenue = graphene.Field(
        CrmMoney,
        required=True,
        description="Money kept in the frequency window from the segment's customers.",
    )
    revenue_share = graphene.Float(required=True, description="0-1 of the channel's revenue.")
    orders = graphene.Int(required=True)
    average_order_value = graphene.Field(CrmMoney)
    moved_in = graphene.Int(required=True, description="From another segment since last run.")
    moved_out = graphene.Int(required=True, description="To another segment since last run.")
    new = graphene.Int(required=True, description="Scored for the first time in this run.")
    lost = graphene.Int(required=True, description="No longer scored since the last run.")


class CrmRfmSummary(graphene.ObjectType):
    run = graphene.Field(CrmRfmRun, required=True)
    segments = graphene.List(graphene.NonNull(CrmRfmSegmentSummary), required=True)

    class Meta:
        description = "A channel's segment table from its latest run."


class CrmRfmMovement(graphene.ObjectType):
    from_segment = graphene.String(description="Null: not scored at the first run.")
    to_segment = graphene.String(description="Null: not scored at the second run.")
    customers = graphene.Int(required=True)


class CrmRfmSegment(graphene.ObjectType):
    slug = graphene.String(required=True)
    name = graphene.String(required=True)
    cells = graphene.List(
        graphene.NonNull(graphene.String), required=True, description='Cells like "R5F4".'
    )


class CrmRfmSegmentMap(graphene.ObjectType):
    channel_id = graphene.ID(required=True)
    segments = graphene.List(graphene.NonNull(CrmRfmSegment), required=True)


def segment_map_payload(channel_id: str, segment_map: SegmentMap) -> CrmRfmSegmentMap:
    specs = segment_map.cell_specs()
    return CrmRfmSegmentMap(
        channel_id=channel_id,
        segments=[
            CrmRfmSegment(slug=slug, name=name, cells=specs.get(slug, []))
            for slug, name in segment_map.names.items()
        ],
    )


class CustomerRfmFields:
    """Mixin for ``CrmCustomer``. Segments are internal marketing labels ("Can't Lose
    Them"), so only staff with MANAGE_USERS read them, not the customer's own token."""

    rfm = graphene.List(
        graphene.NonNull(CrmRfm),
        channel=graphene.String(description="Channel slug or ID to restrict to."),
        description="RFM scores and segment per channel. Requires MANAGE_USERS.",
    )

    @staticmethod
    def resolve_rfm(root: Any, info: Any, channel: str | None = None) -> Promise:
        check_permissions(requester_of(info), (RFM_READ,))

        def pick(rows: list[CustomerRfm]) -> list[CustomerRfm]:
            if channel is None:
                return rows
            return [r for r in rows if channel in (r.channel_id, r.channel_slug)]

        return RfmByCustomerIdLoader(info.context).load(root.pk).then(pick)
