"""Demo report: RFM segments of the replayed UCI customers."""

from __future__ import annotations

from typing import TextIO

from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.reports import summary_table
from saleor_crm_plugin.rfm.services import SegmentFilter


def report(out: TextIO) -> None:
    """Score every channel as of its newest paid order (the extract is historical: scoring
    it as of today would make everybody years-lapsed) and print the segment table."""
    out.write("RFM segments (quintile scores per channel, default R x F map)\n")
    channels = services.channels()
    if not channels:
        out.write("  no paid orders yet\n")
        return
    for channel in channels:
        as_of = services.latest_paid_at(channel.channel_id)
        run = services.recompute(channel.channel_id, full=True, as_of=as_of, write_back=False)
        window = f"{run.frequency_window_days}-day" if run.frequency_window_days else "lifetime"
        out.write(
            f"  channel {channel.slug or channel.channel_id}: {run.customer_count:,} customers "
            f"as of {run.as_of:%Y-%m-%d}, {window} frequency window, {run.duration_ms} ms\n"
        )
        out.write(
            "  cut points (score 1|2|3|4|5): "
            + "; ".join(f"{label} {' | '.join(b)}" for label, b in _bounds(run))
            + "\n\n"
        )
        out.write(summary_table(services.segment_summary(channel.channel_id)))
        champions = services.segment_customers(
            channel.channel_id, SegmentFilter(segment="champions")
        )[:3]
        if champions:
            out.write("\n  Top Champions\n")
            out.write(
                format_table(
                    ["customer", "R", "F", "M", "days", "orders", f"spent {run.currency}"],
                    [
                        [
                            row.customer.email,
                            row.r_score,
                            row.f_score,
                            row.m_score,
                            services.recency_days(row, run),
                            row.frequency,
                            row.monetary,
                        ]
                        for row in champions
                    ],
                )
            )


def _bounds(run: services.RfmRun) -> list[tuple[str, list[str]]]:
    return services.cut_points_table(run)
