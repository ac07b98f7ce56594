"""Plain-text RFM tables shared by the CLI, the demo and the benchmark."""

from __future__ import annotations

from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.rfm.segments import SegmentMap
from saleor_crm_plugin.rfm.services import SegmentSummary


def summary_table(rows: list[SegmentSummary]) -> str:
    return format_table(
        ["segment", "customers", "revenue", "share", "AOV", "in", "out", "new", "lost"],
        [
            [
                r.name,
                r.customers,
                f"{r.revenue:,.2f}",
                f"{r.revenue_share * 100:.1f}%",
                "-" if r.average_order_value is None else f"{r.average_order_value:,.2f}",
                r.moved_in,
                r.moved_out,
                r.new,
                r.lost,
            ]
            for r in rows
        ],
    )


def map_table(segment_map: SegmentMap) -> str:
    """The 5 x 5 grid, R down (5 at the top), F across."""
    headers = ["", *(f"F{f}" for f in range(1, 6))]
    rows = [
        [f"R{r}", *(segment_map.names[segment_map.cells[(r, f)]] for f in range(1, 6))]
        for r in range(5, 0, -1)
    ]
    return format_table(headers, rows)
