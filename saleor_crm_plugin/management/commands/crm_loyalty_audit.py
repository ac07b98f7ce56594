from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from saleor_crm_plugin.loyalty.models import LedgerEntry, LoyaltyAccount
from saleor_crm_plugin.loyalty.services import audit


class Command(BaseCommand):
    help = (
        "Prove every loyalty balance against its ledger: balance = sum of entries, pending = sum "
        "of pending entries, and both match the lots. Exits with status 1 on any mismatch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", type=int, action="append", help="Only these account ids")
        parser.add_argument("--limit", type=int, default=50, help="Problems to print (default 50)")

    def handle(self, *args: Any, **options: Any) -> None:
        problems = audit(options["account"])
        accounts = LoyaltyAccount.objects.count()
        entries = LedgerEntry.objects.count()
        for problem in problems[: options["limit"]]:
            self.stderr.write(str(problem))
        if problems:
            raise CommandError(
                f"{len(problems)} loyalty ledger problems in {accounts:,} accounts "
                f"({entries:,} entries)."
            )
        self.stdout.write(f"Loyalty ledger consistent: {accounts:,} accounts, {entries:,} entries.")
