"""Ingestion benchmark: webhook acknowledgement latency and end-to-end events/s.

Everything is real: the App served by `saleor-crm serve` (granian by default), a Celery worker
on a Redis broker, PostgreSQL, and Saleor-shaped subscription deliveries built from the full
UCI Online Retail dataset, signed exactly as Saleor signs them (RS256 detached JWS) and verified by
the App.

Phase 1 (latency) sends deliveries at a steady rate well below capacity, as Saleor's webhook
sender does, and times each acknowledgement at the client. Phase 2 (throughput) sends half of
the rest as fast as a pool of clients can, with 5% of them re-delivered (Saleor retries) and all
shuffled (deliveries arrive in any order), and measures from the first request until the worker
has processed the last event. Finally it checks that every distinct event was stored and
processed exactly once and that the projection holds every order. Phase 3 measures the worker
alone: with it stopped, a backlog is accepted (as after a worker outage), then a fresh worker
drains it; that is the processing throughput, separate from what the HTTP front end costs on
the same two cores.

The load generator must not steal the cores it measures: every request (headers, body,
signature) is built and signed before the clock starts, and sent as prebuilt bytes over raw
non-blocking sockets, all driven by one thread (``bench._http.Driver``; ``http.client`` parses
each response through ``email.parser``, which cost the server a good part of a core, and a
thread per sender cost GIL hand-offs and context switches). Each sender still has one delivery
in flight at a time, so a phase keeps as many in flight as it has senders. By default each
delivery opens its own connection, as Saleor's sender does; ``--keep-alive`` reuses
connections (with ``--server gunicorn`` it needs ``--web-threads`` > 1: gunicorn's sync worker
closes every connection). The table also reports the CPU the web processes and the load
generator spent per request, read from ``/proc``.

Layouts: by default web, worker, PostgreSQL and the load generator share both cores (the worker
at nice 10). ``--pin-web 0 --pin-worker 1`` (``taskset``) keeps the web server and the worker on
separate cores; PostgreSQL and Redis stay unpinned.

    python -m bench.ingest [--events 20000] [--latency-events 2000] [--rate 100] [--no-write]
        [--web-workers 2] [--web-threads 4] [--keep-alive] [--pin-web 0] [--pin-worker 1]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench._common import DATASETS, ROOT, percentile, recreate_database, write_section
from bench._http import Client, Driver, process_tree_cpu, processes_cpu

DB_NAME = os.environ.get("BENCH_INGEST_DB", "crm_bench_ingest")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")
CACHE = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/8")
API_URL = "https://bench.saleor.local/graphql/"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
BIN = Path(sys.executable).parent


@dataclass
class Signed:
    event: str
    body: bytes
    signature: str
    dedupe: str


def _env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": BROKER,
            "CACHE_URL": CACHE,
            "CRM_ALLOWED_SALEOR_URLS": API_URL,
            "CRM_INBOX_KICK_COALESCE_SECONDS": "0.05",
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "ERROR",
        }
    )
    return env


def _load_deliveries(limit: int) -> list[tuple[str, bytes]]:
    from saleor_crm_plugin.demo.events import deliveries, read_rows

    path = DATASETS / "uci_online_retail" / "online_retail.csv"
    rows = read_rows(path)
    out = []
    for delivery in deliveries(rows):
        out.append((delivery.event, delivery.body))
        if len(out) >= limit:
            break
    return out


def _request(item: Signed, *, keep_alive: bool) -> bytes:
    """The whole HTTP request, built (and signed) before any timing starts."""
    head = (
        "POST /api/webhooks/saleor HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{PORT}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(item.body)}\r\n"
        f"Saleor-Event: {item.event}\r\n"
        "Saleor-Domain: bench.saleor.local\r\n"
        f"Saleor-Api-Url: {API_URL}\r\n"
        f"Saleor-Signature: {item.signature}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("ascii") + item.body


def _context_switches() -> int:
    """Context switches of this process so far (voluntary and not, every thread's, ended
    ones included: what ``/proc/self/task/*/status`` would show summed while they lived)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def _wait_http(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the App did not start")


def _pending() -> int:
    from saleor_crm_plugin.events.models import InboxEvent, InboxStatus

    return InboxEvent.objects.filter(status=InboxStatus.PENDING).count()


def _any_pending() -> bool:
    from saleor_crm_plugin.events.models import InboxEvent, InboxStatus

    return InboxEvent.objects.filter(status=InboxStatus.PENDING).exists()


def _wait_drained(expected: int, timeout: float = 900) -> float:
    """Seconds until every stored event is processed (and at least ``expected`` are stored)."""
    from saleor_crm_plugin.events.models import InboxEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Whether anything is pending is read through the partial pending index and stops at
        # its first live entry; counting them all (1.7 ms with a few thousand pending, every
        # 20 ms) was ~4% of PostgreSQL's time in the run it measures, and the whole table's
        # count scans every row (7 ms at 20,000 rows). Count the table only once nothing is
        # pending.
        if not _any_pending() and InboxEvent.objects.count() >= expected:
            return time.perf_counter()
        time.sleep(0.02)
    raise SystemExit(f"inbox not drained after {timeout}s: {_pending()} pending")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="distinct deliveries in all")
    parser.add_argument("--latency-events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="phase 1 requests/s")
    parser.add_argument(
        "--latency-clients",
        type=int,
        default=4,
        help="phase 1 sender threads (each keeps its share of the schedule)",
    )
    parser.add_argument("--clients", type=int, default=8, help="phase 2 concurrent senders")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--server", choices=["granian", "gunicorn"], default="granian", help="HTTP server"
    )
    parser.add_argument(
        "--web-threads",
        type=int,
        # ``saleor-crm serve``'s default: the acknowledgement's insert opens the request gate
        # while it waits for the WAL flush, so a process's other threads ack meanwhile.
        default=4,
        help="request threads per web worker (gunicorn: 1 = sync worker, more = gthread)",
    )
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="reuse client connections (Saleor opens one per delivery; needs --web-threads > 1)",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="access log (on by default, as `saleor-crm serve` runs; stdout discarded)",
    )
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        help="CPU niceness of the worker: with web and worker on one machine, acknowledging "
        "Saleor comes first (0 = same priority)",
    )
    parser.add_argument("--pin-web", default="", help="CPU list for the web server (taskset -c)")
    parser.add_argument("--pin-worker", default="", help="CPU list for the Celery worker")
    parser.add_argument("--pin-client", default="", help="CPU list for the load generator")
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    database_url = recreate_database(DB_NAME)
    env = _env(database_url)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    for url in (BROKER, CACHE):
        redis.Redis.from_url(url).flushdb()

    from saleor_crm_plugin.app.models import SaleorInstance
    from saleor_crm_plugin.demo.signing import DemoSigner
    from saleor_crm_plugin.events.models import InboxEvent

    signer = DemoSigner.generate()
    SaleorInstance.objects.create(
        saleor_api_url=API_URL, domain="bench.saleor.local", app_id="QXBwOjk=", jwks=signer.jwks
    )
    print(f"building and signing {args.events} deliveries from the UCI dataset ...", flush=True)
    raw = _load_deliveries(args.events)
    signed = [Signed(e, b, signer.sign(b), str(i)) for i, (e, b) in enumerate(raw)]
    requests = {id(item): _request(item, keep_alive=args.keep_alive) for item in signed}
    n_distinct = len(signed)
    if args.pin_client:
        os.sched_setaffinity(0, _cpus(args.pin_client))

    def pinned(cpus: str) -> list[str]:
        return ["taskset", "-c", cpus] if cpus else []

    logs = open(ROOT / ".bench-ingest.log", "w")  # noqa: SIM115 - lives as long as the servers
    web = subprocess.Popen(
        [
            *pinned(args.pin_web),
            str(BIN / "saleor-crm"),
            "serve",
            "--server",
            args.server,
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(args.web_workers),
            "--threads",
            str(args.web_threads),
            "--access-log" if args.access_log else "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=logs,
        start_new_session=True,
    )

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *pinned(args.pin_worker),
                *(["nice", "-n", str(args.worker_nice)] if args.worker_nice else []),
                str(BIN / "saleor-crm"),
                "worker",
                "--queues",
                "ingest",
                "--loglevel",
                "error",
                "--concurrency",
                str(args.worker_concurrency),
            ],
            env=env,
            stdout=logs,
            stderr=logs,
            start_new_session=True,
        )

    def stop(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    answers: Counter[str] = Counter()
    driver = Driver(PORT, keep_alive=args.keep_alive)

    def send_all(items: list[Signed]) -> Client:
        """One sender: its deliveries one after another, as fast as they are answered."""
        for item in items:
            answer = yield requests[id(item)], 0.0
            answers["duplicate" if b"duplicate" in answer.body else str(answer.status)] += 1

    def send_split(items: list[Signed]) -> None:
        driver.run([send_all(part) for part in split(items, args.clients)])

    def split(items: list[Signed], parts: int) -> list[list[Signed]]:
        return [items[k::parts] for k in range(parts)]

    worker = start_worker()
    try:
        _wait_http()
        time.sleep(2)  # let the worker connect to the broker

        # Phase 1: acknowledgement latency at a steady rate. Sender k sends deliveries k,
        # k + n, ... each at its scheduled time, so one slow answer does not hold up the rest.
        first = signed[: args.latency_events]
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        interval = 1.0 / args.rate
        start = time.perf_counter() + 0.1

        def paced(indices: list[int]) -> Client:
            for index in indices:
                answer = yield requests[id(first[index])], start + index * interval
                latencies.append(answer.ms)
                statuses[answer.status] += 1

        driver.run([paced(part) for part in split(list(range(len(first))), args.latency_clients)])
        _wait_drained(len(first))

        # Phase 2: sustained throughput, 5% re-deliveries, shuffled.
        middle = args.latency_events + (len(signed) - args.latency_events) // 2
        rest = signed[args.latency_events : middle]
        backlog = signed[middle:]
        rng = random.Random(7)
        retries = rng.sample(rest, k=len(rest) // 20)
        stream = rest + retries
        rng.shuffle(stream)
        web_cpu0, client_cpu0 = process_tree_cpu(web.pid), time.process_time()
        switches0 = _context_switches()
        cpu0 = _system_cpu(worker.pid)
        t0 = time.perf_counter()
        send_split(stream)
        t_sent = time.perf_counter()
        web_cpu = process_tree_cpu(web.pid) - web_cpu0
        client_cpu = time.process_time() - client_cpu0
        client_switches = _context_switches() - switches0
        t_done = _wait_drained(middle)
        phase2_cpu = _cpu_delta(cpu0, _system_cpu(worker.pid))
        phase2_cpu["web"] = web_cpu
        phase2_cpu["load generator"] = client_cpu

        # Phase 3: the worker alone. With the worker stopped, the rest is accepted into the
        # inbox (a backlog, as after a worker outage); a fresh worker then drains it, and the
        # time from its start to the last processed event is processing throughput alone.
        stop(worker)
        send_split(backlog)
        t_backlog = time.perf_counter()
        worker = start_worker()
        cpu0 = _system_cpu(worker.pid)
        t_first = _wait_first_processed(len(backlog))
        t_drained = _wait_drained(n_distinct)
        phase3_cpu = _cpu_delta(cpu0, _system_cpu(worker.pid))
    finally:
        stop(web)
        stop(worker)
        logs.close()

    from saleor_crm_plugin.customers.models import Order

    stored = InboxEvent.objects.count()
    by_status = Counter(InboxEvent.objects.values_list("status", flat=True))
    expected_orders = len({_order_id(item.body) for item in signed} - {None})
    orders = Order.objects.count()
    lost = n_distinct - stored
    doubled = max(0, stored - n_distinct)
    sent = len(stream)
    e2e = len(rest) / (t_done - t0)
    drain_rate = len(backlog) / (t_drained - t_backlog)
    ack_rate = sent / (t_sent - t0)
    drain_after_send = t_done - t_sent

    p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
    rows = [
        ("ack latency p50 (ms)", f"{p50:.1f}", ""),
        ("ack latency p95 (ms)", f"{p95:.1f}", "<= 10"),
        ("ack latency p99 (ms)", f"{p99:.1f}", "<= 50"),
        ("phase-1 requests (rate/s)", f"{len(first)} @ {args.rate:g}", ""),
        ("phase-2 deliveries sent (incl. 5% retries)", f"{sent}", ""),
        ("phase-2 acknowledged/s", f"{ack_rate:,.0f}", ""),
        (f"phase-2 web CPU per request (ms, {args.server})", f"{web_cpu / sent * 1000:.2f}", ""),
        ("phase-2 load generator CPU per request (ms)", f"{client_cpu / sent * 1000:.2f}", ""),
        ("end-to-end events/s (first POST -> last processed)", f"{e2e:,.0f}", ">= 1,000"),
        ("worker tail after last POST (s)", f"{drain_after_send:.2f}", ""),
        ("phase-3 backlog drained by a fresh worker", f"{len(backlog)} events", ""),
        ("processing events/s (worker start -> backlog drained)", f"{drain_rate:,.0f}", ">= 1,000"),
        ("phase-3 worker start -> first event processed (s)", f"{t_first - t_backlog:.2f}", ""),
        (
            "processing events/s (first processed -> drained)",
            f"{len(backlog) / (t_drained - t_first):,.0f}",
            "",
        ),
        *_cpu_rows("phase-2", phase2_cpu, len(rest), t_done - t0),
        *_cpu_rows("phase-3", phase3_cpu, len(backlog), t_drained - t_backlog),
        ("answers", ", ".join(f"{k}={v}" for k, v in sorted(answers.items())), ""),
        (
            "distinct events / stored / processed",
            f"{n_distinct} / {stored} / {by_status.get('done', 0)}",
            "",
        ),
        ("lost / doubled", f"{lost} / {doubled}", "0 / 0"),
        ("orders in projection / expected", f"{orders} / {expected_orders}", "equal"),
        ("phase-1 HTTP statuses", ", ".join(f"{k}={v}" for k, v in sorted(statuses.items())), ""),
    ]
    from saleor_crm_plugin.core.tables import format_table

    table = format_table(["measure", "value", "target"], rows)
    print(table)
    # Printed only (the written table keeps its rows): how often the load generator left a
    # core per request, the hand-offs a thread per sender used to cost.
    print(f"phase-2 load generator context switches per request: {client_switches / sent:.2f}")
    layout = _layout(args)
    command = " ".join(["python -m bench.ingest", *(argv if argv is not None else sys.argv[1:])])
    if args.server == "granian":
        server = f"granian {args.web_workers} workers x {args.web_threads} threads"
    elif args.web_threads <= 1:
        server = f"gunicorn {args.web_workers} sync workers"
    else:
        server = f"gunicorn {args.web_workers} gthread workers x {args.web_threads} threads"
    server += "" if args.access_log else " without access log"
    setup = (
        f"Setup: `{command.strip()}`; {server}, one Celery worker (prefork, concurrency "
        f"{args.worker_concurrency}, nice {args.worker_nice}) on Redis, PostgreSQL, all on the "
        "same machine as the load generator "
        f"({'one connection per delivery' if not args.keep_alive else 'kept-alive connections'}"
        f"; {args.latency_clients} paced senders in phase 1, {args.clients} in phases 2-3). "
        "Deliveries are subscription payloads built from the full UCI Online Retail dataset and "
        "signed with RS256 (detached JWS) like Saleor's; requests are built and signed before "
        f"timing. Load average (1 min) at the end of this run: {os.getloadavg()[0]:.1f}."
    )
    if not args.no_write:
        _write_layout(layout, f"{setup}\n\n```\n{table}\n```")
    ok = lost == 0 and doubled == 0 and orders == expected_orders
    return 0 if ok else 1


def _system_cpu(worker_pid: int) -> dict[str, float]:
    """CPU seconds so far of the processes that share the cores with the web server: the
    Celery worker (main process and prefork children), every PostgreSQL process, Redis."""
    return {
        "worker": process_tree_cpu(worker_pid),
        "PostgreSQL": processes_cpu("postgres"),
        "Redis": processes_cpu("redis-server"),
    }


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def _cpu_rows(
    phase: str, cpu: dict[str, float], events: int, seconds: float
) -> list[tuple[str, str, str]]:
    """Where the two cores went, per distinct event: what each process spent, and what the
    machine had (2 cores x elapsed time). The gap is idle time or processes not listed."""
    parts = ", ".join(f"{name} {value / events * 1000:.2f}" for name, value in cpu.items())
    spent = sum(cpu.values()) / events * 1000
    available = (os.cpu_count() or 2) * seconds / events * 1000
    return [
        (f"{phase} CPU per event (ms)", parts, ""),
        (f"{phase} CPU spent / cores x time, per event (ms)", f"{spent:.2f} / {available:.2f}", ""),
    ]


def _wait_first_processed(backlog: int, timeout: float = 120) -> float:
    """When a fresh worker has processed its first event of the backlog (its boot time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pending() < backlog:
            return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"the worker processed nothing in {timeout}s")


def _cpus(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _layout(args: argparse.Namespace) -> str:
    """The subsection a run writes: its core layout plus any non-default server setting."""
    extras = [
        text
        for text, on in (
            ("gunicorn", args.server == "gunicorn"),
            (f"threads {args.web_workers}x{args.web_threads}", args.web_threads != 4),
            ("keep-alive", args.keep_alive),
            ("no access log", not args.access_log),
        )
        if on
    ]
    suffix = f"; {', '.join(extras)}" if extras else ""
    if not (args.pin_web or args.pin_worker or args.pin_client):
        return f"Shared cores (no pinning){suffix}"
    parts = [
        f"{name} on CPU {cpus}"
        for name, cpus in (
            ("web", args.pin_web),
            ("worker", args.pin_worker),
            ("load generator", args.pin_client),
        )
        if cpus
    ]
    return "Pinned: " + ", ".join(parts) + f" (PostgreSQL and Redis unpinned){suffix}"


def _write_layout(layout: str, body: str) -> None:
    """Each layout keeps its own ``###`` subsection of ``## Ingestion``; a run rewrites only
    its own, so the shared-cores and pinned figures stand side by side (other subsections, such
    as the in-process CPU notes, are kept as they are)."""
    from bench._common import BENCHMARKS_MD

    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    section = re.search(r"^## Ingestion\n.*?(?=^## |\Z)", text, re.S | re.M)
    subsections: dict[str, str] = {}
    if section:
        for match in re.finditer(r"^### (.+?)\n(.*?)(?=^### |\Z)", section.group(0), re.S | re.M):
            subsections[match.group(1).strip()] = match.group(2).strip()
    subsections[layout] = body.strip()
    order = ("Shared", "Pinned")
    ordered = sorted(
        subsections.items(),
        key=lambda kv: next((i for i, p in enumerate(order) if kv[0].startswith(p)), len(order)),
    )
    write_section("Ingestion", "\n\n".join(f"### {name}\n\n{text}" for name, text in ordered))


def _order_id(body: bytes) -> str | None:
    import json

    data = json.loads(body)
    order = data.get("order") or {}
    return order.get("id")


if __name__ == "__main__":
    sys.exit(main())
