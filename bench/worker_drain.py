"""A real Celery worker draining a backlog (``bench.ingest``'s phase 3 without HTTP), with CPU
per process.

``bench.worker_cpu`` measures the drain's CPU in one process; ``bench.ingest`` phase 3 measures
a fresh ``saleor-crm worker`` (prefork, concurrency 2) draining a 9,000-event backlog behind an
HTTP server. This script sits in between, to explain the difference: it prepares a template
database once (the first ``--warm`` UCI deliveries stored raw and processed in-process, the
next ``--backlog`` stored raw and left pending, as the webhook stores them), then per run
copies the template, queues ``--kicks`` drain tasks in the broker (the coalesced kicks that
pile up while the worker is down), starts ``saleor-crm worker`` the way ``bench.ingest`` does,
and samples every 20 ms until the backlog is drained: the time of the first processed row
(start-up), the drain rate, CPU of the worker's main process and each pool child, CPU of the
database's backends, and what the backends were doing (``pg_stat_activity``: running, waiting
on a lock, idle in transaction = Python work).

    python -m bench.worker_drain [--rebuild] [--warm 11000] [--backlog 9000] [--kicks 30]
        [--concurrency 2] [--nice 10] [--runs 1] [--feed RATE]

``--feed RATE`` drains a live stream instead (``bench.ingest``'s phase 2 without HTTP): the
backlog is taken out of the copy and, once the worker is up, a feeder process stores it again
at RATE rows/s the way the webhook does (``store_webhook``, coalesced kick after commit). CPU
is counted from the first fed row (start-up excluded) and without the feeder's own backend,
and the drain's batches are counted (distinct ``processed_at``), to compare events per batch.

It runs the worker of the code on ``PYTHONPATH`` (``python -m saleor_crm_plugin.cli``), so two
checkouts can be compared on the same template. Broker and cache: ``BENCH_DRAIN_REDIS``
(default db 11), flushed per run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg

from bench._common import db_name, pg_url, recreate_database
from bench._http import process_cpu, processes

TEMPLATE = db_name(os.environ.get("BENCH_DRAIN_TEMPLATE", "crm_bench_template_drain"))
DB_NAME = db_name(os.environ.get("BENCH_DRAIN_DB", "crm_bench_run_drain"))
REDIS = os.environ.get("BENCH_DRAIN_REDIS", "redis://127.0.0.1:6379/11")
API_URL = "https://bench.saleor.local/graphql/"


def _env(database_url: str, batch_size: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": REDIS,
            "CACHE_URL": REDIS,
            "CRM_ALLOWED_SALEOR_URLS": API_URL,
            "CRM_INBOX_KICK_COALESCE_SECONDS": "0.05",
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "ERROR",
        }
    )
    if batch_size:
        env["CRM_INBOX_BATCH_SIZE"] = str(batch_size)
    return env


def _build_template(warm: int, backlog: int) -> None:
    """Run in a child process: Django is set up on the template database."""
    os.environ.update(_env(recreate_database(TEMPLATE), None))
    import django

    django.setup()
    from django.core.management import call_command

    from bench.worker_cpu import _store
    from saleor_crm_plugin.events import inbox

    call_command("migrate", verbosity=0)
    from bench.ack_cpu import _cached_deliveries

    deliveries = _cached_deliveries(warm + backlog)
    t0 = time.perf_counter()
    _store(deliveries[:warm], "raw")
    inbox.process_pending()
    _store(deliveries[warm:], "raw")
    took = time.perf_counter() - t0
    print(f"template {TEMPLATE}: {warm} processed, {backlog} pending ({took:.0f}s)")
    from django.db import connections

    connections.close_all()


def _feed(rate: float, limit: int) -> None:
    """Run in a child process on the run database: take the pending rows out, say ``ready``
    with this connection's backend pid, and on a line from stdin store them again, oldest
    first, at ``rate`` per second as the webhook view does."""
    import django

    django.setup()
    from django.db import connection

    from saleor_crm_plugin.events import inbox

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM saleor_crm_plugin_inboxevent WHERE status = 'pending' "
            "RETURNING id, dedupe_key, kind, saleor_api_url, raw_body"
        )
        rows = sorted(cursor.fetchall())[: limit or None]
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    print(f"ready {backend} {len(rows)}", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    for i, (_, key, kind, url, body) in enumerate(rows):
        pause = t0 + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        inbox.store_webhook(dedupe_key=key, kind=kind, saleor_api_url=url, raw_body=body)
    took = time.perf_counter() - t0
    print(f"fed {len(rows)} in {took:.2f}s ({len(rows) / took:,.0f}/s)", flush=True)


def _cpu(pid: int) -> float | None:
    """CPU seconds of a process, or None once it has exited."""
    try:
        return process_cpu(pid)
    except OSError:
        return None


def _children(root: int) -> list[int]:
    return [pid for pid, ppid, _, _ in processes() if ppid == root]


def run_once(args: argparse.Namespace) -> dict[str, float]:
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}" TEMPLATE "{TEMPLATE}"')
    env = _env(pg_url(DB_NAME), args.batch_size)
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    # The kicks that piled up in the broker while the worker was down.
    kick = [
        sys.executable,
        "-c",
        "import django; django.setup();"
        "from saleor_crm_plugin.tasks.ingest import process_inbox_task as t;"
        f"[t.delay() for _ in range({args.kicks})]",
    ]
    if args.kicks and not args.feed:
        subprocess.run(kick, env=env, check=True)
    db = psycopg.connect(pg_url(DB_NAME), autocommit=True)
    backlog = db.execute(
        "SELECT count(*) FROM saleor_crm_plugin_inboxevent WHERE status = 'pending'"
    ).fetchone()[0]
    feeder = None
    skip_pids: set[int] = set()
    if args.feed:
        code = f"from bench.worker_drain import _feed; _feed({args.feed}, {args.feed_events})"
        feeder = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        _, backend, fed = feeder.stdout.readline().split()
        skip_pids.add(int(backend))
        backlog = int(fed)
    command = [sys.executable, "-m", "saleor_crm_plugin.cli", "worker", "--queues", "ingest"]
    command += ["--loglevel", "error", "--concurrency", str(args.concurrency)]
    if args.nice:
        command = ["nice", "-n", str(args.nice), *command]
    t0 = time.perf_counter()
    worker = subprocess.Popen(command, env=env, start_new_session=True)
    root = worker.pid
    cpu_seen: dict[int, float] = {}
    role: dict[int, str] = {}
    states: Counter[str] = Counter()
    first = None
    cpu_base: dict[int, float] = {}
    fed_at = None
    if feeder is not None:
        time.sleep(args.feed_start)  # the worker is up and idle: start-up stays out of the CPU
        for pid in [root, *_children(root)]:
            cpu_base[pid] = _cpu(pid) or 0.0
        for (pid,) in db.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DB_NAME],
        ).fetchall():
            cpu_base[pid] = _cpu(pid) or 0.0
        fed_at = db.execute("SELECT now()").fetchone()[0]
        feeder.stdin.write("go\n")
        feeder.stdin.flush()
        t0 = time.perf_counter()
        first = 0.0
    while True:
        time.sleep(0.02)
        pending = db.execute(
            "SELECT count(*) FROM saleor_crm_plugin_inboxevent WHERE status = 'pending'"
        ).fetchone()[0]
        now = time.perf_counter()
        if first is None and pending < backlog:
            first = now - t0
        for pid in [root, *_children(root)]:
            seconds = _cpu(pid)
            if seconds is not None:
                cpu_seen[pid] = seconds
                role.setdefault(pid, "main" if pid == root else "child")
        for pid, state, wait, query in db.execute(
            "SELECT pid, state, wait_event_type, left(query, 60) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [DB_NAME],
        ).fetchall():
            seconds = _cpu(pid) if pid not in skip_pids else None
            if seconds is not None:
                cpu_seen[pid] = seconds
                role.setdefault(pid, "pg")
            if state == "active":
                states[f"waiting {wait}" if wait else "running"] += 1
                if wait == "Lock":
                    states[f"  lock in: {query}"] += 1
                elif not wait and args.queries:
                    states[f"  running: {query}"] += 1
            else:
                states[state or "?"] += 1
        if pending == 0 and (feeder is None or feeder.poll() is not None):
            break
        if now - t0 > 600:
            raise SystemExit("not drained in 600 s")
    elapsed = time.perf_counter() - t0
    with contextlib.suppress(ProcessLookupError):
        os.killpg(root, signal.SIGTERM)
    worker.wait(timeout=30)
    time.sleep(0.5)  # backends report their table statistics when they exit
    hot = db.execute(
        "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
        "WHERE relname IN ('saleor_crm_plugin_orderline', 'saleor_crm_plugin_order') ORDER BY 1"
    ).fetchall()
    statuses = dict(
        db.execute(
            "SELECT status, count(*) FROM saleor_crm_plugin_inboxevent GROUP BY 1"
        ).fetchall()
    )
    batches = None
    if fed_at is not None:
        batches = db.execute(
            "SELECT count(DISTINCT processed_at) FROM saleor_crm_plugin_inboxevent "
            "WHERE processed_at >= %s",
            [fed_at],
        ).fetchone()[0]
        print(f"  feeder: {feeder.stdout.read().strip()}")
    db.close()
    cpu = Counter()
    for pid, seconds in cpu_seen.items():
        cpu[role[pid]] += seconds - cpu_base.get(pid, 0.0)
    children = sorted(
        seconds - cpu_base.get(pid, 0.0)
        for pid, seconds in cpu_seen.items()
        if role[pid] == "child"
    )
    print(
        f"drained {backlog} in {elapsed:.2f}s = {backlog / elapsed:,.0f} events/s; first row after "
        f"{first:.2f}s; after that {backlog / (elapsed - first):,.0f} events/s; statuses {statuses}"
    )
    pool = " + ".join(f"{c:.2f}" for c in children)
    worker_ms = (cpu["main"] + cpu["child"]) / backlog * 1000
    print(
        f"  CPU s: worker main {cpu['main']:.2f}, children {pool} ({len(children)}), PostgreSQL "
        f"backends {cpu['pg']:.2f}; per event: worker {worker_ms:.3f} ms, "
        f"pg {cpu['pg'] / backlog * 1000:.3f} ms"
    )
    if batches:
        print(f"  batches: {batches}, {backlog / batches:.1f} events per batch")
    print("  updates (HOT): " + ", ".join(f"{t[18:]} {u} ({h})" for t, u, h in hot))
    total = sum(v for k, v in states.items() if not k.startswith("  "))
    print(
        "  backend samples: "
        + ", ".join(f"{k} {v}" for k, v in states.most_common() if not k.startswith("  "))
        + f" (of {total})"
    )
    for k, v in states.most_common():
        if k.startswith("  "):
            print(f"  {k.strip()}: {v}")
    return {
        "rate": backlog / elapsed,
        "first": first,
        "elapsed": elapsed,
        "worker_ms": worker_ms,
        "pg_ms": cpu["pg"] / backlog * 1000,
        "per_batch": backlog / batches if batches else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the template database")
    parser.add_argument("--warm", type=int, default=11000)
    parser.add_argument("--backlog", type=int, default=9000)
    parser.add_argument("--kicks", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--queries", action="store_true", help="count the running statements")
    parser.add_argument(
        "--feed", type=float, default=0, help="store the backlog at this many rows/s instead"
    )
    parser.add_argument("--feed-events", type=int, default=0, help="rows to feed (0: all)")
    parser.add_argument(
        "--feed-start", type=float, default=4.0, help="seconds between worker start and feed"
    )
    args = parser.parse_args(argv)
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [TEMPLATE]).fetchone()
    if args.rebuild or not exists:
        code = "from bench.worker_drain import _build_template as b; b({}, {})"
        code = code.format(args.warm, args.backlog)
        subprocess.run([sys.executable, "-c", code], check=True)
    import saleor_crm_plugin

    print(f"code: {Path(saleor_crm_plugin.__file__).parent.parent}")
    results = [run_once(args) for _ in range(args.runs)]
    if args.feed and len(results) > 1:
        median = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"median of {len(results)}: worker {median['worker_ms']:.3f} ms, pg "
            f"{median['pg_ms']:.3f} ms per event, {median['per_batch']:.1f} events per batch"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
