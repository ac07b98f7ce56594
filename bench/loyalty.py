"""Loyalty benchmarks on PostgreSQL (database ``crm_bench_loyalty``, recreated each run).

1. Ledger throughput: the full UCI Online Retail dataset (all invoices with a customer) turned
   into Saleor webhook events (as the demo does) and replayed event by event through the real
   handlers, one savepoint per event as the inbox does. The projection and the loyalty handler
   are timed separately; the target (>= 1,000 orders/s) is for the loyalty handler.
   Then the whole event stream is replayed once more (Saleor retries): nothing may change.
2. Balance latency: 1,000,000 ledger entries over 20,000 accounts, then the balance of random
   accounts summed from the ledger (the definition of the balance) and read from the cached
   column. Target p95 <= 10 ms.

Run: ``.venv/bin/python -m bench.loyalty [--csv PATH] [--entries N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

DATASET = Path(
    os.environ.get(
        "CRM_UCI_CSV",
        Path(__file__).resolve().parents[1].parent
        / "shared/datasets/uci_online_retail/online_retail.csv",
    )
)
if not DATASET.exists():
    DATASET = Path("/work/shared/datasets/uci_online_retail/online_retail.csv")
DB_NAME = "crm_bench_loyalty"
BASE_URL = os.environ.get("CRM_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Loyalty"


def setup_django(reuse: bool = False) -> None:
    import psycopg

    if not reuse:
        with psycopg.connect(f"{BASE_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ["DATABASE_URL"] = f"{BASE_URL}/{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saleor_crm_plugin.app.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_BROKER_URL = ""
    # Default program (1 point per unit, bronze/silver/gold over rolling 12 months) plus the
    # bonuses a merchant typically switches on, so every code path runs.
    settings.CRM_LOYALTY = {"signup_bonus": 50, "first_order_bonus": 100}
    call_command("migrate", verbosity=0)


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


LOYALTY_TABLES = (
    "saleor_crm_plugin_lotconsumption, saleor_crm_plugin_ledgerentry, "
    "saleor_crm_plugin_redemption, saleor_crm_plugin_tierchange, "
    "saleor_crm_plugin_pointlot, saleor_crm_plugin_loyaltyaccount, "
    "saleor_crm_plugin_metadatawriteback"
)


def throughput(csv_path: Path, per_event_sample: int, reuse: bool) -> dict[str, object]:
    from django.db import connection, transaction

    from saleor_crm_plugin.customers import projection
    from saleor_crm_plugin.demo.events import deliveries, read_rows
    from saleor_crm_plugin.events.from_webhook import translate_webhook
    from saleor_crm_plugin.loyalty import services
    from saleor_crm_plugin.loyalty.models import LedgerEntry, LoyaltyAccount, PointLot

    started = time.perf_counter()
    rows = read_rows(csv_path)
    events = [
        translate_webhook(d.event, d.body, "http://bench.saleor.local/graphql/")
        for d in deliveries(rows)
    ]
    prepare = time.perf_counter() - started
    order_events = [e for e in events if e.order is not None]
    orders = {e.order.saleor_order_id for e in order_events if e.order is not None}
    print(
        f"{len(rows):,} invoice lines with a customer -> {len(events):,} events "
        f"({len(order_events):,} order events, {len(orders):,} orders) in {prepare:.1f}s",
        file=sys.stderr,
    )
    from saleor_crm_plugin.customers.models import Customer, Order

    started = time.perf_counter()
    if reuse and Order.objects.count() == len(orders):
        # Projection kept from an earlier run: start the loyalty tables afresh.
        with connection.cursor() as cur:
            cur.execute(f"TRUNCATE {LOYALTY_TABLES}")
            cur.execute(
                "DELETE FROM saleor_crm_plugin_customer WHERE saleor_user_id LIKE 'bench-user-%%'"
            )
    else:
        for start in range(0, len(events), 500):
            with transaction.atomic():
                for event in events[start : start + 500]:
                    projection.apply_event(event)
    projection_s = time.perf_counter() - started
    assert Customer.objects.exists()
    print(f"projection built in {projection_s:.1f}s", file=sys.stderr)

    def state() -> tuple[object, ...]:
        return (
            list(LoyaltyAccount.objects.order_by("pk").values_list("balance", "pending", "tier")),
            LedgerEntry.objects.count(),
        )

    started = time.perf_counter()
    replayed = services.replay_orders()
    replay_s = time.perf_counter() - started
    first = state()
    problems = services.audit()
    started = time.perf_counter()
    services.replay_orders()
    again_s = time.perf_counter() - started
    unchanged = state() == first
    result = {
        "orders": len(orders),
        "replayed": replayed,
        "events": len(events),
        "order_events": len(order_events),
        "accounts": LoyaltyAccount.objects.count(),
        "lots": PointLot.objects.count(),
        "entries": LedgerEntry.objects.count(),
        "projection_s": projection_s,
        "replay_s": replay_s,
        "orders_per_s": replayed / replay_s,
        "again_s": again_s,
        "again_orders_per_s": replayed / again_s,
        "replay_unchanged": unchanged,
        "audit_problems": len(problems),
    }
    # The event handler, event by event (one savepoint each, as the inbox runs it), on a
    # sample of the stream: the per-event cost, which is bounded by database round trips.
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {LOYALTY_TABLES}")
    sample = order_events[:per_event_sample]
    started = time.perf_counter()
    for start in range(0, len(sample), 200):
        with transaction.atomic():
            for event in sample[start : start + 200]:
                with transaction.atomic():
                    services.handle_event(event)
    handler_s = time.perf_counter() - started
    result.update(
        handler_events=len(sample),
        handler_orders=len({e.order.saleor_order_id for e in sample if e.order}),
        handler_s=handler_s,
        handler_events_per_s=len(sample) / handler_s,
        handler_ms=handler_s * 1000 / len(sample),
    )
    return result


def balance_latency(total_entries: int, accounts: int = 20_000) -> dict[str, object]:
    from django.db import connection

    from saleor_crm_plugin.loyalty.models import LoyaltyAccount
    from saleor_crm_plugin.loyalty.services import balance_of

    per_account = total_entries // accounts
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO saleor_crm_plugin_customer
                (saleor_user_id, email, first_name, last_name, language_code, country_code,
                 metadata, field_versions, order_count, email_hash, created_at, updated_at)
            SELECT 'bench-user-' || g, 'bench' || g || '@example.com', '', '', '', '',
                   '{}', '{}', 0, '', now(), now()
            FROM generate_series(1, %s) g
            """,
            [accounts],
        )
        cur.execute(
            """
            INSERT INTO saleor_crm_plugin_loyaltyaccount
                (customer_id, channel_id, channel_slug, currency, balance, pending, debt,
                 lifetime_earned, lifetime_redeemed, tier, created_at, updated_at)
            SELECT c.id, 'bench-channel', 'bench', 'GBP', 0, 0, 0, 0, 0, 'bronze', now(), now()
            FROM saleor_crm_plugin_customer c WHERE c.saleor_user_id LIKE 'bench-user-%%'
            """
        )
        # Random-ish signed amounts, spread over the accounts the way real traffic interleaves.
        cur.execute(
            """
            INSERT INTO saleor_crm_plugin_ledgerentry
                (account_id, kind, source, source_id, points, pending_points, reason,
                 idempotency_key, staff_user_id, data, created_at)
            SELECT a.id, 'bonus', 'system', '', ((g::bigint * 7919) %% 200) - 50, 0, '',
                   'bench:' || g, '', '{}', now() - (g || ' seconds')::interval
            FROM generate_series(1, %s) g
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
                  FROM saleor_crm_plugin_loyaltyaccount WHERE channel_id = 'bench-channel') a
              ON a.n = g %% %s
            """,
            [per_account * accounts, accounts],
        )
        cur.execute(
            """
            UPDATE saleor_crm_plugin_loyaltyaccount a SET balance = s.total
            FROM (SELECT account_id, SUM(points) AS total FROM saleor_crm_plugin_ledgerentry
                  GROUP BY account_id) s
            WHERE s.account_id = a.id
            """
        )
        cur.execute("VACUUM ANALYZE saleor_crm_plugin_ledgerentry")
        cur.execute("VACUUM ANALYZE saleor_crm_plugin_loyaltyaccount")
        cur.execute("SELECT count(*) FROM saleor_crm_plugin_ledgerentry")
        total = cur.fetchone()[0]
    load_s = time.perf_counter() - started
    ids = list(
        LoyaltyAccount.objects.filter(channel_id="bench-channel").values_list("pk", flat=True)
    )
    rng = random.Random(11)
    sample = [rng.choice(ids) for _ in range(2000)]
    for account_id in sample[:100]:  # warm the connection and the plan cache
        balance_of(account_id)
    ledger_ms, cached_ms = [], []
    for account_id in sample:
        t0 = time.perf_counter()
        balance_of(account_id)
        ledger_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        LoyaltyAccount.objects.only("balance", "pending").get(pk=account_id)
        cached_ms.append((time.perf_counter() - t0) * 1000)
    mismatches = sum(
        balance_of(a)[0] != LoyaltyAccount.objects.get(pk=a).balance for a in sample[:200]
    )
    return {
        "entries": total,
        "accounts": len(ids),
        "load_s": load_s,
        "ledger_p50": pct(ledger_ms, 50),
        "ledger_p95": pct(ledger_ms, 95),
        "ledger_p99": pct(ledger_ms, 99),
        "cached_p50": pct(cached_ms, 50),
        "cached_p95": pct(cached_ms, 95),
        "mismatches": mismatches,
    }


def write_docs(text: str) -> None:
    DOCS.parent.mkdir(exist_ok=True)
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{text.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section + "\n", current).rstrip() + "\n"
    else:
        updated = current.rstrip() + "\n\n" + section
    DOCS.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", type=Path, default=DATASET)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--per-event", type=int, default=3000, help="handler sample size")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the projected orders of the previous run"
    )
    args = parser.parse_args()
    setup_django(args.reuse)

    from django.db import connection

    from saleor_crm_plugin.core.tables import format_table

    t = throughput(args.csv, args.per_event, args.reuse)
    b = balance_latency(args.entries)
    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        pg = cur.fetchone()[0]
    table = format_table(
        ["measure", "result", "target"],
        [
            [
                f"ledger replay of all {t['replayed']:,} UCI orders",
                f"{t['orders_per_s']:,.0f} orders/s ({t['replay_s']:.1f}s)",
                ">= 1,000 orders/s",
            ],
            [
                "same replay again (idempotent)",
                f"{t['again_orders_per_s']:,.0f} orders/s, ledger unchanged: "
                f"{t['replay_unchanged']}",
                "unchanged",
            ],
            [
                f"event handler, first {t['handler_events']:,} order events",
                f"{t['handler_events_per_s']:,.0f} events/s ({t['handler_ms']:.1f} ms/event)",
                "-",
            ],
            ["audit after replay", f"{t['audit_problems']} problems", "0"],
            [
                f"balance = SUM(ledger), {b['entries']:,} entries",
                f"p50 {b['ledger_p50']:.2f} ms, p95 {b['ledger_p95']:.2f} ms, "
                f"p99 {b['ledger_p99']:.2f} ms",
                "p95 <= 10 ms",
            ],
            [
                "balance from the cached column",
                f"p50 {b['cached_p50']:.2f} ms, p95 {b['cached_p95']:.2f} ms",
                "-",
            ],
            ["cache vs ledger mismatches (200 sampled)", b["mismatches"], "0"],
        ],
    )
    load = os.getloadavg()
    projected = "kept from the previous run" if args.reuse else f"{t['projection_s']:.0f}s"
    details = (
        f"Dataset: `uci_online_retail/online_retail.csv`, {t['orders']:,} orders, "
        f"{t['events']:,} events ({t['order_events']:,} order events) projected first "
        f"({projected}, not counted) -> {t['accounts']:,} accounts, {t['lots']:,} "
        f"lots, {t['entries']:,} ledger entries; audit: {t['audit_problems']} problems. "
        "The replay (`loyalty.services.replay_orders`, used for backfills and repairs) applies "
        "the same rules as the event handler with set-based reads and writes per chunk of "
        "accounts; the event handler does a handful of queries per event, so its rate is "
        "bounded by database round trips. Balance data: "
        f"{b['accounts']:,} accounts, loaded in {b['load_s']:.1f}s; 2,000 random accounts, "
        f"single connection. PostgreSQL {pg}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} during the run (shared machine)."
    )
    print(table)
    print(details)
    if not args.no_docs:
        write_docs(
            "`.venv/bin/python -m bench.loyalty` (database `crm_bench_loyalty`).\n\n"
            + "```\n"
            + table
            + "```\n\n"
            + details
        )


if __name__ == "__main__":
    main()
