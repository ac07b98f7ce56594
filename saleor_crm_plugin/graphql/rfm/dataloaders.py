from __future__ import annotations

from collections.abc import Iterable

from saleor_crm_plugin.graphql.core.dataloaders import DataLoader, group_by
from saleor_crm_plugin.rfm.models import CustomerRfm, RfmRun


class RfmByCustomerIdLoader(DataLoader[int, list[CustomerRfm]]):
    context_key = "rfm_by_customer_id"

    def batch_load(self, keys: list[int]) -> Iterable[list[CustomerRfm]]:
        rows = group_by(
            CustomerRfm.objects.filter(customer_id__in=keys).order_by("customer_id", "channel_id"),
            "customer_id",
        )
        return [rows.get(key, []) for key in keys]


class LatestRunByChannelLoader(DataLoader[str, RfmRun | None]):
    """The run a channel's current scores come from (recency is measured to its ``as_of``)."""

    context_key = "rfm_latest_run_by_channel"

    def batch_load(self, keys: list[str]) -> Iterable[RfmRun | None]:
        latest: dict[str, RfmRun] = {}
        for run in RfmRun.objects.filter(channel_id__in=keys).order_by("channel_id", "-pk"):
            latest.setdefault(run.channel_id, run)
        return [latest.get(key) for key in keys]
