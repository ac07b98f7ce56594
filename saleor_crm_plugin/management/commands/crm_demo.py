from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from saleor_crm_plugin.demo.runner import run_demo


class Command(BaseCommand):
    help = (
        "Replay a UCI Online Retail extract as signed Saleor webhooks through the App and print "
        "what every CRM feature made of it."
    )

    # The demo runs on embedded defaults (dev key, empty allow-list): warnings about those
    # production settings would only confuse.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data", type=Path, help="A UCI Online Retail CSV instead of the extract"
        )
        parser.add_argument("--limit", type=int, help="Only the first N deliveries")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = (
            None if options["no_progress"] else tqdm(unit="event", file=sys.stderr, desc="webhooks")
        )

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.update(done - bar.n)

        try:
            run_demo(self.stdout, data=options["data"], limit=options["limit"], progress=progress)
        finally:
            if bar is not None:
                bar.close()
