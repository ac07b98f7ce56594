from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus


class Command(BaseCommand):
    help = (
        "Re-enqueue inbox events still pending (broker was down, a worker died); with --failed "
        "also give failed events another round. Processing is idempotent, so this is safe."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--failed", action="store_true", help="Also retry failed events")
        parser.add_argument(
            "--sync", action="store_true", help="Process in this process instead of enqueueing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        requeued = inbox.requeue_failed() if options["failed"] else 0
        pending = InboxEvent.objects.filter(status=InboxStatus.PENDING).count()
        if options["sync"]:
            processed = inbox.process_pending()
            failed = InboxEvent.objects.filter(status=InboxStatus.FAILED).count()
            self.stdout.write(
                f"Processed {processed} events ({requeued} failed ones retried); "
                f"{failed} failed, {InboxEvent.objects.filter(status='pending').count()} waiting "
                "for their retry time."
            )
            return
        if pending:
            inbox.enqueue_processing()
        self.stdout.write(
            f"Enqueued processing of {pending} pending events ({requeued} failed ones retried)."
        )
