from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.exceptions import RfmError
from saleor_crm_plugin.rfm.reports import map_table, summary_table


class Command(BaseCommand):
    help = (
        "RFM segments: recompute scores (all channels or one), print the segment table or a "
        "movement matrix, export a segment as CSV, show or edit a channel's segment map."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rec = sub.add_parser("recompute", help="Score now (incremental unless --full)")
        rec.add_argument("--channel", help="Channel id or slug (default: every channel)")
        rec.add_argument("--full", action="store_true", help="Re-aggregate every order")
        rec.add_argument("--as-of", help="ISO time to score as of, or 'latest' (newest paid order)")
        rec.add_argument(
            "--async", dest="use_async", action="store_true", help="Enqueue a Celery task"
        )
        summary = sub.add_parser("summary", help="Segment table of the latest run")
        summary.add_argument("--channel", required=True)
        move = sub.add_parser("movement", help="From/to matrix between two runs")
        move.add_argument("--channel", required=True)
        move.add_argument("--from-run", type=int, help="default: the run before --to-run")
        move.add_argument("--to-run", type=int, help="default: the latest run")
        export = sub.add_parser("export", help="CSV of a segment's customers (for e-mail tools)")
        export.add_argument("--channel", required=True)
        export.add_argument("--segment", help="Segment key, e.g. champions (default: all)")
        export.add_argument("--output", help="File to write (default: stdout)")
        seg_map = sub.add_parser("map", help="Show, set (from JSON) or reset a segment map")
        seg_map.add_argument("--channel", required=True)
        seg_map.add_argument(
            "--set",
            dest="set_file",
            help='JSON file: [{"slug": "champions", "name": "Champions", "cells": ["R5F4-5"]}]',
        )
        seg_map.add_argument("--reset", action="store_true", help="Back to the default map")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except RfmError as exc:
            raise CommandError(str(exc)) from exc

    def _recompute(self, options: dict[str, Any]) -> None:
        targets = (
            [services.resolve_channel(options["channel"])]
            if options["channel"]
            else services.channels()
        )
        if options["use_async"]:
            from saleor_crm_plugin.tasks.rfm import rfm_recompute_task

            for channel in targets:
                rfm_recompute_task.delay(channel.channel_id, full=options["full"])
            self.stdout.write(f"Enqueued RFM recompute of {len(targets)} channel(s).")
            return
        for channel in targets:
            as_of = self._as_of(options["as_of"], channel.channel_id)
            run = services.recompute(channel.channel_id, full=options["full"], as_of=as_of)
            self.stdout.write(
                f"{channel.slug or channel.channel_id}: run {run.pk} ({run.kind}) scored "
                f"{run.customer_count:,} customers, re-aggregated {run.recomputed_count:,}, "
                f"{run.changed_count:,} changed, {run.moved_count:,} moved segment, "
                f"{run.duration_ms:,} ms"
            )

    def _as_of(self, value: str | None, channel_id: str) -> datetime | None:
        if not value:
            return None
        if value == "latest":
            return services.latest_paid_at(channel_id)
        parsed = parse_datetime(value)
        if parsed is None:
            raise CommandError(f"--as-of: '{value}' is not an ISO date-time.")
        return parsed

    def _summary(self, options: dict[str, Any]) -> None:
        channel = services.resolve_channel(options["channel"])
        rows = services.segment_summary(channel.channel_id)
        if not rows:
            self.stdout.write("No RFM run yet for this channel; run `recompute` first.")
            return
        self.stdout.write(summary_table(rows))

    def _movement(self, options: dict[str, Any]) -> None:
        channel = services.resolve_channel(options["channel"])
        to_run = (
            services.get_run(options["to_run"], channel.channel_id)
            if options["to_run"]
            else services.latest_run(channel.channel_id)
        )
        if to_run is None:
            raise CommandError("No RFM run yet for this channel.")
        if options["from_run"]:
            from_run = services.get_run(options["from_run"], channel.channel_id)
        else:
            from_run = (
                type(to_run)
                .objects.filter(channel_id=channel.channel_id, pk__lt=to_run.pk)
                .order_by("-pk")
                .first()
            )
            if from_run is None:
                raise CommandError("Only one run so far: nothing to compare with.")
        matrix = services.movement_matrix(from_run, to_run)
        self.stdout.write(f"Movement from run {from_run.pk} to run {to_run.pk}\n")
        self.stdout.write(
            format_table(
                ["from", "to", "customers"],
                [
                    [a or "(not scored)", b or "(not scored)", n]
                    for (a, b), n in sorted(matrix.items(), key=lambda i: (-i[1], i[0]))
                    if a != b
                ],
            )
        )

    def _export(self, options: dict[str, Any]) -> None:
        channel = services.resolve_channel(options["channel"])
        filters = services.SegmentFilter(segment=options["segment"])
        if options["output"]:
            with open(options["output"], "w", newline="", encoding="utf-8") as out:
                count = services.export_segment_csv(out, channel.channel_id, filters)
            self.stderr.write(f"Wrote {count:,} customers to {options['output']}.")
        else:
            services.export_segment_csv(sys.stdout, channel.channel_id, filters)

    def _map(self, options: dict[str, Any]) -> None:
        channel_id = options["channel"]
        if options["reset"]:
            segment_map = services.reset_segment_map(channel_id)
        elif options["set_file"]:
            with open(options["set_file"], encoding="utf-8") as f:
                try:
                    data = json.load(f)
                except json.JSONDecodeError as exc:
                    raise CommandError(f"--set: not valid JSON ({exc}).") from exc
            if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
                raise CommandError("--set: expected a list of {slug, name, cells} objects.")
            segment_map = services.set_segment_map(
                channel_id,
                [(d.get("slug", ""), d.get("name", ""), d.get("cells") or []) for d in data],
            )
        else:
            segment_map = services.get_segment_map(channel_id)
        self.stdout.write(map_table(segment_map))
