from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from saleor_crm_plugin.loyalty.services import audit, replay_orders


class Command(BaseCommand):
    help = (
        "Reconcile the loyalty ledger with every projected order (after installing the program "
        "on an existing store, after changing earning settings for pending points, or to "
        "repair). Idempotent: orders already reflected post nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--order", action="append", help="Only these Saleor Order IDs")
        parser.add_argument("--chunk", type=int, default=2000, help="Orders per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        done = replay_orders(options["order"], chunk=options["chunk"])
        elapsed = time.perf_counter() - started
        problems = audit()
        self.stdout.write(
            f"Reconciled {done:,} orders in {elapsed:.1f}s; audit: "
            f"{'consistent' if not problems else f'{len(problems)} problems'}."
        )
