"""RFM root fields and mutations: authorise, map arguments, call ``rfm.services``."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import graphene
from django.db import transaction

from saleor_crm_plugin.graphql.core.connection import connection_field, paginate_queryset
from saleor_crm_plugin.graphql.core.mutations import BaseMutation, error_type
from saleor_crm_plugin.graphql.core.permissions import permission_required
from saleor_crm_plugin.graphql.core.types import money
from saleor_crm_plugin.graphql.rfm.types import (
    CrmRfmMovement,
    CrmRfmSegmentCustomerCountableConnection,
    CrmRfmSegmentMap,
    CrmRfmSegmentSummary,
    CrmRfmSummary,
    segment_map_payload,
)
from saleor_crm_plugin.permissions import RFM_MANAGE, RFM_READ
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.error_codes import RfmErrorCode
from saleor_crm_plugin.rfm.exceptions import RfmError

RfmError_ = error_type("RfmError", RfmErrorCode)


class CrmRfmCustomerFilterInput(graphene.InputObjectType):
    segment = graphene.String(description="Segment key, e.g. `champions`.")
    r_scores = graphene.List(graphene.NonNull(graphene.Int), description="Any of these R scores.")
    f_scores = graphene.List(graphene.NonNull(graphene.Int))
    m_scores = graphene.List(graphene.NonNull(graphene.Int))
    min_monetary = graphene.Float()
    max_monetary = graphene.Float()
    min_frequency = graphene.Int()
    max_recency_days = graphene.Int(description="Bought within this many days of the run.")
    changed_in_last_run = graphene.Boolean(description="Scores changed by the latest run.")
    search = graphene.String(description="Part of the e-mail, first or last name.")
    with_email = graphene.Boolean(description="Only customers with an e-mail address.")


def _filters(data: dict[str, Any] | None) -> services.SegmentFilter:
    data = dict(data or {})
    for name in ("min_monetary", "max_monetary"):
        if data.get(name) is not None:
            data[name] = Decimal(str(data[name]))
    for name in ("r_scores", "f_scores", "m_scores"):
        data[name] = tuple(data.get(name) or ())
    data["search"] = data.get("search") or ""
    data["changed_in_last_run"] = bool(data.get("changed_in_last_run"))
    data["with_email"] = bool(data.get("with_email"))
    return services.SegmentFilter(**data)


def _channel_id(channel: str) -> str:
    return services.resolve_channel(channel).channel_id


class RfmQueries(graphene.ObjectType):
    rfm_segment_summary = graphene.Field(
        CrmRfmSummary,
        channel=graphene.String(required=True, description="Channel slug or ID."),
        description=(
            "Segment table of the channel's latest RFM run: customers, revenue share, average "
            "order value and movement since the previous run; null before the first run. "
            "Requires MANAGE_USERS."
        ),
    )
    rfm_segment_customers = connection_field(
        CrmRfmSegmentCustomerCountableConnection,
        channel=graphene.String(required=True, description="Channel slug or ID."),
        filter=CrmRfmCustomerFilterInput(),
        description="Scored customers of a channel, biggest spenders first. Requires MANAGE_USERS.",
    )
    rfm_segment_export = graphene.String(
        channel=graphene.String(required=True, description="Channel slug or ID."),
        filter=CrmRfmCustomerFilterInput(),
        description=(
            "CSV (header row, one customer per line, customers with an e-mail only) for e-mail "
            "tools. For very large segments prefer `saleor-crm rfm export`. Requires MANAGE_USERS."
        ),
    )
    rfm_segment_movement = graphene.List(
        graphene.NonNull(CrmRfmMovement),
        channel=graphene.String(required=True),
        from_run=graphene.ID(description="Default: the run before `toRun`."),
        to_run=graphene.ID(description="Default: the latest run."),
        description="From/to segment matrix between two runs. Requires MANAGE_USERS.",
    )
    rfm_segment_map = graphene.Field(
        CrmRfmSegmentMap,
        channel=graphene.String(required=True, description="Channel slug or ID."),
        description="The channel's R x F segment map. Requires MANAGE_USERS.",
    )

    @staticmethod
    @permission_required(RFM_READ)
    def resolve_rfm_segment_summary(root: Any, info: Any, channel: str) -> Any:
        channel_id = _channel_id(channel)
        run = services.latest_run(channel_id)
        if run is None:
            return None
        currency = run.currency
        rows = [
            CrmRfmSegmentSummary(
                segment=r.segment,
                name=r.name,
                customers=r.customers,
                revenue=money(r.revenue, currency),
                revenue_share=float(r.revenue_share),
                orders=r.orders,
                average_order_value=money(r.average_order_value, currency),
                moved_in=r.moved_in,
                moved_out=r.moved_out,
                new=r.new,
                lost=r.lost,
            )
            for r in services.segment_summary(channel_id)
        ]
        return CrmRfmSummary(run=run, segments=rows)

    @staticmethod
    @permission_required(RFM_READ)
    def resolve_rfm_segment_customers(
        root: Any, info: Any, channel: str, filter: dict | None = None, **args: Any
    ) -> Any:
        queryset = services.segment_customers(_channel_id(channel), _filters(filter))
        return paginate_queryset(
            queryset,
            args,
            ordering=("-monetary", "pk"),
            connection_type=CrmRfmSegmentCustomerCountableConnection,
            field_name="rfmSegmentCustomers",
        )

    @staticmethod
    @permission_required(RFM_READ)
    def resolve_rfm_segment_export(
        root: Any, info: Any, channel: str, filter: dict | None = None
    ) -> str:
        out = io.StringIO()
        services.export_segment_csv(out, _channel_id(channel), _filters(filter))
        return out.getvalue()

    @staticmethod
    @permission_required(RFM_READ)
    def resolve_rfm_segment_movement(
        root: Any,
        info: Any,
        channel: str,
        from_run: str | None = None,
        to_run: str | None = None,
    ) -> list[CrmRfmMovement]:
        channel_id = _channel_id(channel)
        to = (
            services.get_run(_run_pk(to_run, "toRun"), channel_id, field="toRun")
            if to_run
            else services.latest_run(channel_id)
        )
        if to is None:
            return []
        if from_run:
            start = services.get_run(_run_pk(from_run, "fromRun"), channel_id, field="fromRun")
        else:
            start = services.previous_run(to)
            if start is None:
                return []
        matrix = services.movement_matrix(start, to)
        return [
            CrmRfmMovement(from_segment=a or None, to_segment=b or None, customers=n)
            for (a, b), n in sorted(matrix.items(), key=lambda i: (-i[1], i[0]))
        ]

    @staticmethod
    @permission_required(RFM_READ)
    def resolve_rfm_segment_map(root: Any, info: Any, channel: str) -> Any:
        return segment_map_payload(channel, services.get_segment_map(_map_channel(channel)))


def _run_pk(value: str, field: str) -> int:
    if not str(value).isdigit():
        raise RfmError(RfmErrorCode.RUN_NOT_FOUND, f"There is no RFM run {value}.", field)
    return int(value)


def _map_channel(channel: str) -> str:
    """Maps may be set before a channel has sales: fall back to the argument as the ID."""
    try:
        return _channel_id(channel)
    except RfmError:
        return channel


class CrmRfmSegmentInput(graphene.InputObjectType):
    slug = graphene.String(required=True, description="Key, e.g. `champions`.")
    name = graphene.String(required=True, description="Display name.")
    cells = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description='Cells or ranges: "R5F4-5", "R1-2F1-2".',
    )


class RfmRecompute(BaseMutation):
    queued = graphene.Boolean(description="True once the recompute is queued.")

    class Arguments:
        channel = graphene.String(required=True, description="Channel slug or ID.")
        full = graphene.Boolean(description="Re-aggregate every order (default: incremental).")

    class Meta:
        description = "Recompute a channel's RFM scores now, in the background."
        permissions = (RFM_MANAGE,)
        error_type_class = RfmError_

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, channel: str, full: bool = False) -> Any:
        from saleor_crm_plugin.tasks.rfm import rfm_recompute_task

        channel_id = _channel_id(channel)
        transaction.on_commit(lambda: rfm_recompute_task.delay(channel_id, full=bool(full)))
        return cls(queued=True)


class RfmSegmentMapUpdate(BaseMutation):
    segment_map = graphene.Field(CrmRfmSegmentMap)

    class Arguments:
        channel = graphene.String(required=True, description="Channel slug or ID.")
        segments = graphene.List(
            graphene.NonNull(CrmRfmSegmentInput),
            required=True,
            description="Every R x F cell exactly once.",
        )
        reset = graphene.Boolean(description="Back to the default map (segments ignored).")

    class Meta:
        description = (
            "Replace a channel's R x F segment map; applies from the next RFM run. Rejected "
            "whole unless it covers each of the 25 cells exactly once."
        )
        permissions = (RFM_MANAGE,)
        error_type_class = RfmError_

    @classmethod
    def perform_mutation(
        cls, root: Any, info: Any, channel: str, segments: list[dict], reset: bool = False
    ) -> Any:
        channel_id = _map_channel(channel)
        if reset:
            segment_map = services.reset_segment_map(channel_id)
        else:
            segment_map = services.set_segment_map(
                channel_id, [(s["slug"], s["name"], s["cells"]) for s in segments]
            )
        return cls(segment_map=segment_map_payload(channel_id, segment_map))


class RfmMutations(graphene.ObjectType):
    rfm_recompute = RfmRecompute.Field()
    rfm_segment_map_update = RfmSegmentMapUpdate.Field()
