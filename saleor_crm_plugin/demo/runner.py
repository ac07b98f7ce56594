"""The demo: a Saleor store's history replayed through the App's real webhook endpoint.

A throwaway key plays the Saleor instance (registered like an installed App), the UCI extract
becomes signed deliveries, and each goes over HTTP to a local server running the App. Then
every domain prints what it made of them.
"""

from __future__ import annotations

import http.client
import importlib
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TextIO
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db.models import Sum
from django.test.utils import override_settings

from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.app.registry import instance_cache
from saleor_crm_plugin.core import crypto
from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.customers.models import Customer, CustomerChannelStats, Order, OrderLine
from saleor_crm_plugin.demo.events import Delivery, deliveries, read_rows
from saleor_crm_plugin.demo.signing import DemoSigner
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus

DEMO_API_URL = "http://demo.saleor.local/graphql/"
DOMAIN_REPORTS = (
    "saleor_crm_plugin.loyalty.demo",
    "saleor_crm_plugin.rfm.demo",
    "saleor_crm_plugin.recommendations.demo",
    "saleor_crm_plugin.tickets.demo",
    "saleor_crm_plugin.reviews.demo",
)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@dataclass
class DeliveryStats:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


def register_demo_instance(signer: DemoSigner) -> SaleorInstance:
    instance, _ = SaleorInstance.objects.update_or_create(
        saleor_api_url=DEMO_API_URL,
        defaults={
            "domain": "demo.saleor.local",
            "app_id": "QXBwOjI=",
            "auth_token_encrypted": crypto.encrypt("demo-app-token"),
            "jwks": signer.jwks,
        },
    )
    instance_cache.clear()
    return instance


class LocalApp:
    """The App's WSGI application on a loopback port, in a background thread."""

    def __init__(self) -> None:
        self.server = make_server(
            "127.0.0.1",
            0,
            get_wsgi_application(),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        connection.close()
        return response.status, data, elapsed


def deliver(
    app: LocalApp, signer: DemoSigner, delivery: Delivery, *, tamper: bool = False
) -> tuple[int, bytes, float]:
    signature = signer.sign(delivery.body)
    # Tampering adds one byte after signing (still valid JSON): any changed byte must fail the
    # check, whatever the delivery (a content edit would be a no-op on some payloads).
    body = delivery.body.replace(b"{", b"{ ", 1) if tamper else delivery.body
    headers = {
        "Content-Type": "application/json",
        "Saleor-Event": delivery.event,
        "Saleor-Domain": "demo.saleor.local",
        "Saleor-Api-Url": DEMO_API_URL,
        "Saleor-Signature": signature,
    }
    return app.post("/api/webhooks/saleor", body, headers)


def run_demo(
    out: TextIO,
    *,
    data: Path | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    started = time.perf_counter()
    signer = DemoSigner.generate()
    register_demo_instance(signer)
    rows = read_rows(data)
    items = list(deliveries(rows))
    if limit:
        items = items[:limit]
    out.write(
        f"Replaying {len(items):,} Saleor webhook deliveries built from {len(rows):,} UCI Online "
        f"Retail invoice lines ({len({r.customer_id for r in rows})} customers, CC BY 4.0).\n"
    )
    stats = DeliveryStats()
    with _drain_after_delivery() as drained_in, LocalApp() as app:
        for n, delivery in enumerate(items, start=1):
            status, body, ms = deliver(app, signer, delivery)
            stats.statuses[f"{status} {_status_word(body)}"] += 1
            stats.latencies_ms.append(ms)
            if progress:
                progress(n, len(items))
        # Saleor retries: re-send some deliveries byte for byte; they must change nothing.
        retries = random.Random(7).sample(items, min(len(items), max(1, len(items) // 20)))
        retry_statuses = Counter(_status_word(deliver(app, signer, d)[1]) for d in retries)
        forged_status, _, _ = deliver(app, signer, items[-1], tamper=True)
    drained = _wait_for_inbox()
    elapsed = time.perf_counter() - started
    processing = (
        f"  processing:            {drained_in[0]:.1f}s for the whole inbox, in batches, after"
        " delivery (no broker: the demo drains it as a worker would)\n"
        if drained_in
        else ""
    )
    p50, p95 = _pct(stats.latencies_ms, 50), _pct(stats.latencies_ms, 95)
    out.write(
        f"\nDelivered over HTTP to the App's /api/webhooks/saleor in {elapsed:.1f}s\n"
        f"  responses:             {dict(stats.statuses)}\n"
        f"  acknowledgement:       p50 {p50:.1f} ms, p95 {p95:.1f} ms\n"
        f"{processing}"
        f"  retried deliveries:    {len(retries)} re-sent -> {dict(retry_statuses)}\n"
        f"  forged signature:      HTTP {forged_status}, "
        f"{'nothing stored' if forged_status == 401 else 'ACCEPTED: this is a bug'}\n"
        f"  inbox:                 {_inbox_summary()}{'' if drained else ' (still draining)'}\n"
    )
    _report_customers(out)
    for module_name in DOMAIN_REPORTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        out.write("\n")
        module.report(out)


def _status_word(body: bytes) -> str:
    for word in ("accepted", "duplicate", "ignored", "invalid"):
        if word.encode() in body:
            return word
    return "error"


def _pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _wait_for_inbox(timeout: float = 120.0) -> bool:
    """With a broker, workers process asynchronously; wait for them (the sweep would too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not InboxEvent.objects.filter(status=InboxStatus.PENDING).exists():
            return True
        inbox.process_pending()
        time.sleep(0.2)
    return False


@contextmanager
def _drain_after_delivery() -> Iterator[list[float]]:
    """Without a broker every kick would run the drain inside the request, one event at a
    time. The demo instead marks a drain as already queued (the coalescing key every request
    checks) and runs it once all deliveries are in, as a worker would: batches, not events."""
    timings: list[float] = []
    if not _eager():
        yield timings
        return
    with override_settings(CRM_INBOX_KICK_COALESCE_SECONDS=3600):
        cache.set(inbox.KICK_CACHE_KEY, 1, timeout=3600)
        try:
            yield timings
        finally:
            started = time.perf_counter()
            inbox.process_pending()
            timings.append(time.perf_counter() - started)
            cache.delete(inbox.KICK_CACHE_KEY)


def _inbox_summary() -> str:
    counts = Counter(InboxEvent.objects.values_list("status", flat=True))
    return ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))


def _eager() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))


def _report_customers(out: TextIO) -> None:
    totals = CustomerChannelStats.objects.aggregate(
        spent=Sum("total_spent"), refunded=Sum("total_refunded")
    )
    out.write(
        "\nCustomer 360 (projection)\n"
        f"  customers {Customer.objects.count():,}, orders {Order.objects.count():,}, "
        f"order lines {OrderLine.objects.count():,}\n"
        f"  net revenue kept {totals['spent'] or 0:,.2f} GBP, "
        f"refunded {totals['refunded'] or 0:,.2f} GBP\n"
        "\n  Top customers by lifetime spend\n"
    )
    top = CustomerChannelStats.objects.select_related("customer").order_by("-total_spent", "pk")[:5]
    out.write(
        format_table(
            ["customer", "orders", "spent GBP", "refunded GBP", "first order", "last order"],
            [
                [
                    row.customer.email,
                    row.order_count,
                    row.total_spent,
                    row.total_refunded,
                    f"{row.first_order_at:%Y-%m-%d}",
                    f"{row.last_order_at:%Y-%m-%d}",
                ]
                for row in top
            ],
        )
    )
