"""CPU of the inbox drain per event, measured in-process (no Celery, no HTTP).

UCI deliveries (subscription payloads built as ``bench/ingest.py`` builds them) are stored in
the inbox of a fresh PostgreSQL database, either as the App's webhook stores them now (raw
body, translated by the worker: ``--store raw``, the default) or as a
translated event's JSON (``--store translated``: plugin hooks and backfill, and the webhook
before it deferred the translation). The first half is drained untimed (warm projection and
loyalty), the second half is drained by ``inbox.process_pending()`` and measured: CPU time of
this process, its PostgreSQL backend's utime+stime (``/proc``), and queries (an execute
wrapper). Then, untimed by the drain, the pure cost of what each storage form makes the worker
do per event: translating the raw body, or decoding the stored JSON and ``from_dict``.

    python -m bench.worker_cpu [--events 8000] [--store raw|translated] [--batch-size 500]
        [--profile | --phases | --statements]

``--phases`` splits the timed drain's CPU by step (translation, projection load/apply/flush,
loyalty, aggregates, inbox bookkeeping) with a ``process_time`` wrapper per step: unlike
cProfile, which inflates code made of many small calls, it leaves the code's own speed alone.

``--statements`` splits PostgreSQL's side by statement: every ``execute``, ``executemany``,
``COPY`` block and commit of psycopg's cursors and connection is wrapped, and the backend's
CPU time around it is read from ``/proc/<pid>/schedstat`` (nanoseconds of the scheduler's
own accounting, where ``/proc/<pid>/stat`` counts 10 ms ticks), then summed by statement
text (its first words, numbers and literals blanked). Foreign key checks and triggers are in
the statement that fires them. The wrappers add Python CPU, so the worker's figure is not
comparable with a run without them; PostgreSQL's is.

To compare code versions on the same machine, copy this file into the other checkout's
``bench/`` and run it there with that checkout on ``PYTHONPATH`` (it needs only
``bench/_common.py`` and ``bench/ack_cpu.py``); without ``store_webhook`` it stores translated
rows.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import recreate_database
from bench._http import process_cpu
from bench.ack_cpu import API_URL, BROKER, CACHE, _cached_deliveries

DB_NAME = os.environ.get("BENCH_WORKER_DB", "crm_bench_worker_cpu")


def _store(deliveries: list[tuple[str, bytes]], how: str) -> None:
    from django.db import transaction

    from saleor_crm_plugin.events import inbox
    from saleor_crm_plugin.events.from_webhook import event_kind_from_header, translate_webhook

    with transaction.atomic():
        for name, body in deliveries:
            if how == "raw":
                from saleor_crm_plugin.events.from_webhook import webhook_dedupe_key

                kind = event_kind_from_header(name)
                inbox.store_webhook(
                    dedupe_key=webhook_dedupe_key(API_URL, kind, body),
                    kind=kind.value,
                    saleor_api_url=API_URL,
                    raw_body=body.decode(),
                    kick=False,
                )
            else:
                inbox.store_event(translate_webhook(name, body, API_URL), kick=False)


def _per_event_costs(deliveries: list[tuple[str, bytes]]) -> dict[str, float]:
    """CPU µs per event of the two forms' decoding alone (best of 3 passes)."""
    from saleor_crm_plugin.events.from_webhook import translate_webhook
    from saleor_crm_plugin.events.types import CrmEvent

    events = [translate_webhook(name, body, API_URL) for name, body in deliveries]
    stored_json = [json.dumps(e.to_dict()) for e in events]
    texts = [
        (name.lower(), body.decode(), e.dedupe_key)
        for (name, body), e in zip(deliveries, events, strict=True)
    ]
    results: dict[str, float] = {}

    def best(label: str, fn: Any) -> None:
        times = []
        for _ in range(3):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        results[label] = min(times) / len(deliveries) * 1e6

    best(
        "json.loads + from_dict (translated rows)",
        lambda: [CrmEvent.from_dict(json.loads(s)) for s in stored_json],
    )
    try:
        from saleor_crm_plugin.events.from_webhook import translate_stored_webhook
    except ImportError:
        return results
    best(
        "translate_stored_webhook (raw rows)",
        lambda: [translate_stored_webhook(k, t, API_URL, d) for k, t, d in texts],
    )
    return results


def _time_phases() -> dict[str, float]:
    """Wrap the drain's steps to add up their CPU (``process_time``); nested steps are
    indented under the step that calls them."""
    from saleor_crm_plugin.customers import batch, projection
    from saleor_crm_plugin.events import inbox
    from saleor_crm_plugin.loyalty import earning

    totals: dict[str, float] = {}
    steps = [
        (inbox, "translate_stored_webhook", "translate raw bodies"),
        (inbox, "_leave_contended", "try-locks"),
        (batch, "apply_batch", "projection"),
        (batch._Unit, "load", "  load (locks, orders, customers)"),
        (batch, "_load_lines", "    of which lines"),
        (batch._Unit, "apply", "  apply events in memory"),
        (batch._Unit, "flush", "  write orders, lines, customers"),
        (projection, "_refresh_now", "customer aggregates"),
        (inbox, "_run_domains_in_bulk", "loyalty"),
        # The earning pass reads histories through ``_order_histories`` (older code: the public
        # ``order_histories``), so this file still runs in an older checkout.
        (earning, _histories_reader(earning), "  order histories"),
        (earning, "lock_accounts", "  lock accounts"),
        (earning, "_reconcile", "  reconcile"),
        (earning, "flush", "  write lots, entries, accounts"),
        (inbox, "_save_outcomes", "inbox outcomes"),
        (inbox, "_redact_erased", "erased-subject check"),
    ]
    for owner, name, label in steps:
        totals[label] = 0.0
        setattr(owner, name, _timed(getattr(owner, name), label, totals))
    return totals


def _statement_costs(backend: int) -> dict[str, list[float]]:
    """Wrap psycopg's statement entry points (``Cursor.execute``, ``executemany``, ``copy``
    and ``Connection.commit``) to add up the backend's CPU (ns, ``schedstat``), wall time and
    calls per statement text; see the module docstring."""
    import contextlib
    import re

    import psycopg

    totals: dict[str, list[float]] = {}
    path = f"/proc/{backend}/schedstat"
    blank = re.compile(r"'(?:[^']|'')*'|\b\d+\b")

    def label(query: Any) -> str:
        text = query if isinstance(query, str) else getattr(query, "as_string", lambda _: "")(None)
        if isinstance(query, bytes):
            text = query.decode()
        return blank.sub("?", " ".join(str(text).split()))[:160]

    def cpu() -> int:
        with open(path) as stat:
            return int(stat.read().split()[0])

    def add(key: str, ns: int, wall: float) -> None:
        entry = totals.setdefault(key, [0.0, 0.0, 0])
        entry[0] += ns
        entry[1] += wall
        entry[2] += 1

    def measured(fn: Any, kind: str) -> Any:
        def wrapper(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            c0, w0 = cpu(), time.perf_counter()
            try:
                return fn(self, query, *args, **kwargs)
            finally:
                add(f"{kind}{label(query)}", cpu() - c0, time.perf_counter() - w0)

        return wrapper

    def measured_copy(fn: Any) -> Any:
        @contextlib.contextmanager
        def wrapper(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            c0, w0 = cpu(), time.perf_counter()
            try:
                with fn(self, statement, *args, **kwargs) as copy:
                    yield copy
            finally:
                add(label(statement), cpu() - c0, time.perf_counter() - w0)

        return wrapper

    def measured_commit(fn: Any) -> Any:
        def wrapper(self: Any) -> Any:
            c0, w0 = cpu(), time.perf_counter()
            try:
                return fn(self)
            finally:
                add("COMMIT", cpu() - c0, time.perf_counter() - w0)

        return wrapper

    psycopg.Cursor.execute = measured(psycopg.Cursor.execute, "")  # type: ignore[method-assign]
    psycopg.Cursor.executemany = measured(  # type: ignore[method-assign]
        psycopg.Cursor.executemany, "(many) "
    )
    psycopg.Cursor.copy = measured_copy(psycopg.Cursor.copy)  # type: ignore[method-assign]
    psycopg.Connection.commit = measured_commit(psycopg.Connection.commit)  # type: ignore[method-assign]
    return totals


def _histories_reader(earning: Any) -> str:
    return "_order_histories" if hasattr(earning, "_order_histories") else "order_histories"


def _timed(fn: Any, label: str, totals: dict[str, float]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[label] += time.process_time() - start

    return timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8000, help="stored; the second half is timed")
    parser.add_argument("--store", choices=["raw", "translated"], default="raw")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile the timed drain")
    parser.add_argument("--phases", action="store_true", help="CPU of the drain by step")
    parser.add_argument(
        "--statements", action="store_true", help="PostgreSQL backend CPU by statement"
    )
    args = parser.parse_args(argv)

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
            "DATABASE_URL": recreate_database(DB_NAME),
            "CELERY_BROKER_URL": BROKER,
            "CACHE_URL": CACHE,
            "CRM_ALLOWED_SALEOR_URLS": API_URL,
            "CRM_INBOX_KICK_COALESCE_SECONDS": "0",
            "CRM_INBOX_BATCH_SIZE": str(args.batch_size),
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "ERROR",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    import saleor_crm_plugin
    from saleor_crm_plugin.events import inbox
    from saleor_crm_plugin.events.models import InboxEvent

    call_command("migrate", verbosity=0)
    phases = _time_phases() if args.phases else None
    deliveries = _cached_deliveries(args.events)
    half = len(deliveries) // 2
    _store(deliveries, args.store)
    stored = InboxEvent.objects.count()
    inbox.process_pending(max_events=half)  # warm: projection, loyalty, caches
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    queries = [0]
    statements = _statement_costs(backend) if args.statements else None

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries[0] += 1
        return execute(sql, params, many, context)

    profiler = cProfile.Profile(time.process_time) if args.profile else None
    with connection.execute_wrapper(count):
        if phases is not None:  # the warm-up drain is not counted
            phases.update(dict.fromkeys(phases, 0.0))
        pg0, c0 = process_cpu(backend), time.process_time()
        if profiler:
            profiler.enable()
        drained = inbox.process_pending()
        if profiler:
            profiler.disable()
        c1, pg1 = time.process_time(), process_cpu(backend)
    statuses = sorted(set(InboxEvent.objects.values_list("status", flat=True)))
    code = Path(saleor_crm_plugin.__file__).parent.parent
    print(f"code: {code}; rows stored {args.store}: {stored}")
    print(
        f"drained {drained} events (batch {args.batch_size}): worker CPU "
        f"{(c1 - c0) / drained * 1000:.3f} ms/event, PostgreSQL backend "
        f"{(pg1 - pg0) / drained * 1000:.3f} ms/event, {queries[0] / drained:.3f} queries/event; "
        f"statuses {statuses}"
    )
    if statements is not None:
        known = sum(entry[0] for entry in statements.values()) / 1e9
        print(
            f"  statements: {known / drained * 1000:.3f} ms/event of backend CPU inside them "
            f"({(pg1 - pg0) / drained * 1000:.3f} by /proc/stat)"
        )
        print("  backend µs/event  wall µs/event  calls  statement")
        for text, (ns, wall, calls) in sorted(statements.items(), key=lambda kv: -kv[1][0]):
            if ns / drained < 50:  # under 0.05 µs per event
                continue
            print(f"  {ns / drained / 1e3:16.1f}  {wall / drained * 1e6:13.1f}  {calls:5d}  {text}")
    if phases is not None:
        for label, seconds in phases.items():
            print(f"  {label:<32} {seconds / drained * 1e6:7.1f} µs/event")
    for label, micros in _per_event_costs(deliveries[half:]).items():
        print(f"  {label}: {micros:.0f} µs/event")
    if profiler:
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
            print(out.getvalue())
        if os.environ.get("BENCH_PROFILE_DUMP"):  # for pstats' callers/callees views
            profiler.dump_stats(os.environ["BENCH_PROFILE_DUMP"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
