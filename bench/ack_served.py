"""Acknowledgements through the real server, without a worker: CPU per delivery of each side.

``bench.ingest`` runs the worker beside the web server, so PostgreSQL's CPU per event mixes the
acknowledgement's inserts with the worker's statements, and the worker's load moves every
figure. This serves the App as ``saleor-crm serve`` does (granian, 2 workers x 4 threads, no
access log), sends signed UCI deliveries from ``--clients`` threads on a new connection each
(as Saleor's sender does; the same requests as ``bench.ingest``), with no Celery worker (the
kicks wait in the broker), and reports per acknowledged delivery: the web processes' CPU and
context switches (every thread, voluntary and involuntary: counted, where CPU times are
noise on a shared machine), the CPU of the PostgreSQL backends of its database, the load
generator's, and the transactions that wrote the rows (distinct ``xmin``: below 1 per row
when inserts share a transaction). Nothing is alternated here: run the trees to compare one
after the other, several times each.

    python -m bench.ack_served [--deliveries 3000] [--clients 8] [--rounds 3]
        [--workers 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from bench import ack_cpu, ack_instructions
from bench._common import percentile, recreate_database
from bench._http import (
    Sender,
    free_port,
    process_cpu,
    process_tree_cpu,
    processes,
    serve_app,
)


def _request(event: str, body: bytes, signature: str, port: int) -> bytes:
    """The whole request as ``bench.ingest`` builds it (one connection, closed after it)."""
    head = (
        "POST /api/webhooks/saleor HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Saleor-Event: {event}\r\n"
        "Saleor-Domain: bench.saleor.local\r\n"
        f"Saleor-Api-Url: {ack_cpu.API_URL}\r\n"
        f"Saleor-Signature: {signature}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _transactions(database_url: str) -> tuple[int, int]:
    """Inbox rows, and the distinct transactions that wrote them (their ``xmin``)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM saleor_crm_plugin_inboxevent"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _switches(root: int) -> int:
    """Context switches so far (voluntary and involuntary) of every thread of the server's
    processes: each is a sleep and a wake-up, with their kernel time and cold caches
    (docs/benchmarks.md, feat/h9), and they are counted where CPU times are noise."""
    pids = [pid for pid, ppid, _, _ in processes() if root in (pid, ppid)]
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                text = (task / "status").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.rsplit(None, 1)[1])
    return total


def _backends_cpu(database_url: str) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to this run's database (the
    web's connections live across rounds): other databases' backends, which come and go on
    a shared machine, are not counted. The WAL writer's share is not in it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    return sum(process_cpu(pid) for pid in pids if Path(f"/proc/{pid}").exists())


def _send(
    port: int, part: list[bytes], latencies: list[float], bad: list[int], lock: threading.Lock
) -> None:
    """One sender thread: each request on a new connection, in turn (a closed loop)."""
    mine: list[float] = []
    wrong: list[int] = []
    for request in part:
        status, ms, body = Sender(False, port).post(request)
        mine.append(ms)
        if status != 200 or b"accepted" not in body:
            wrong.append(status)
    with lock:
        latencies.extend(mine)
        bad.extend(wrong)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="distinct per round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)

    total = args.deliveries * args.rounds
    signed = ack_instructions._signed(total + ack_instructions.WARM_UP)
    database = os.environ.get("BENCH_ACK_DB", "crm_bench_ack_cpu") + "_served"
    database_url = recreate_database(database)
    env = {k: v for k, v in ack_instructions._env(database_url).items() if k != "PYTHONHASHSEED"}
    # The served processes run with the production default (kicks coalesced for 50 ms).
    env["CRM_INBOX_KICK_COALESCE_SECONDS"] = "0.05"
    ack_instructions._prepare(database_url, signed["jwks"])
    import redis

    for url in (ack_cpu.CACHE, ack_cpu.BROKER):
        redis.Redis.from_url(url).flushdb()
    port = free_port()
    requests = [_request(e, b, s, port) for e, b, s in signed["deliveries"]]
    # Granian's log lines go to standard output: kept out of the table.
    server = serve_app("granian", port, args.workers, args.threads, env, stdout=subprocess.DEVNULL)
    try:
        # Every request thread's first insert connects, prepares and warms up.
        warm = requests[: ack_instructions.WARM_UP]
        for request in warm:
            Sender(False, port).post(request)
        rest = requests[ack_instructions.WARM_UP :]
        print(
            "round  acks/s  p50 ms  p95 ms  p99 ms  web ms/ack  PostgreSQL ms/ack  "
            "client ms/ack  xacts/row  web switches/ack"
        )
        for round_ in range(args.rounds):
            batch = rest[round_ * args.deliveries : (round_ + 1) * args.deliveries]
            latencies: list[float] = []
            bad: list[int] = []
            lock = threading.Lock()

            parts = [batch[k :: args.clients] for k in range(args.clients)]
            threads = [
                threading.Thread(target=_send, args=(port, part, latencies, bad, lock))
                for part in parts
            ]
            rows0, xacts0 = _transactions(database_url)
            switches0 = _switches(server.pid)
            web0, pg0, client0 = (
                process_tree_cpu(server.pid),
                _backends_cpu(database_url),
                time.process_time(),
            )
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            web = process_tree_cpu(server.pid) - web0
            pg = _backends_cpu(database_url) - pg0
            client = time.process_time() - client0
            switches = _switches(server.pid) - switches0
            rows1, xacts1 = _transactions(database_url)
            if bad:
                raise SystemExit(f"{len(bad)} deliveries not accepted: {bad[:5]}")
            n = len(batch)
            print(
                f"{round_ + 1:>5}  {n / elapsed:>6,.0f}  {percentile(latencies, 50):>6.2f}  "
                f"{percentile(latencies, 95):>6.2f}  {percentile(latencies, 99):>6.2f}  "
                f"{web / n * 1000:>10.3f}  {pg / n * 1000:>17.3f}  {client / n * 1000:>13.3f}  "
                f"{(xacts1 - xacts0) / max(1, rows1 - rows0):>9.3f}  {switches / n:>16.2f}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
