from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from saleor_crm_plugin.core.saleor_api import SaleorApiError
from saleor_crm_plugin.events.backfill import RESOURCES, backfill


class Command(BaseCommand):
    help = (
        "Import existing customers and orders from Saleor's GraphQL API (resumable). "
        "The token needs MANAGE_USERS and MANAGE_ORDERS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--saleor-url", required=True, help="https://shop.example.com/graphql/")
        parser.add_argument("--token", required=True, help="Saleor app token")
        parser.add_argument("--resource", action="append", choices=RESOURCES, dest="resources")
        parser.add_argument("--page-size", type=int, default=100)
        parser.add_argument("--restart", action="store_true", help="Ignore saved progress")
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Apply events in this process instead of leaving them to Celery workers",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        bars: dict[str, tqdm] = {}

        def on_page(resource: str, done: int, total: int | None) -> None:
            if options["no_progress"]:
                return
            bar = bars.get(resource)
            if bar is None:
                bar = bars[resource] = tqdm(
                    total=total, desc=resource, unit="obj", file=self.stderr
                )
            bar.total = total
            bar.update(done - bar.n)

        try:
            reports = backfill(
                options["saleor_url"],
                options["token"],
                resources=tuple(options["resources"] or RESOURCES),
                page_size=options["page_size"],
                restart=options["restart"],
                process_inline=options["sync"],
                on_page=on_page,
            )
        except (SaleorApiError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            for bar in bars.values():
                bar.close()
        for report in reports:
            resumed = " (resumed from saved progress)" if report.resumed_from else ""
            self.stdout.write(
                f"{report.resource}: fetched {report.fetched}, stored {report.stored} new "
                f"snapshots, Saleor total {report.total}{resumed}"
            )
