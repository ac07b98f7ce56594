"""The floor under every HTTP target: a trivial Django view behind each server we ship.

The GraphQL and webhook targets (p95 <= 15 ms at 20 concurrent clients, ack p95 <= 10 ms)
are set on a 2-core machine where the server, PostgreSQL and the load generator share the
cores. Before blaming a resolver, this measures what the stack costs with nothing of ours in
it: ``GET /healthz`` (a ``JsonResponse``, no database) through ``saleor-crm serve`` with
granian and with gunicorn, closed-loop raw-socket clients (one thread each, ``Sender``: the
figures stay comparable with its earlier tables; ``bench.graphql`` drives its clients from one
epoll thread since feat/lg, which costs the cores less per request), and the server CPU per
request read from ``/proc``. Whatever a real request costs comes on top.

    python -m bench.http_floor [--clients 20] [--duration 8] [--workers 2] [--threads 4]
        [--no-write]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

from bench._common import ROOT, percentile, write_section
from bench._http import Sender, free_port, process_tree_cpu, serve_app


def serve(server: str, port: int, workers: int, threads: int, database: Path) -> subprocess.Popen:
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "SECRET_KEY": "bench-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    return serve_app(
        server,
        port,
        workers,
        threads,
        env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def load(port: int, pid: int, clients: int, duration: float) -> list[str]:
    request = (
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    lock = threading.Lock()
    warmup_until = time.perf_counter() + 1
    stop_at = warmup_until + duration

    def client(index: int) -> None:
        sender = Sender(True, port)
        time.sleep(random.Random(index).random() / 100)
        mine = []
        while (started := time.perf_counter()) < stop_at:
            status, elapsed, _ = sender.post(request)
            assert status == 200, status
            if started >= warmup_until:
                mine.append(elapsed)
        sender.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, warmup_until - time.perf_counter()))
    server_cpu, client_cpu = process_tree_cpu(pid), time.process_time()
    for thread in threads:
        thread.join()
    server_ms = (process_tree_cpu(pid) - server_cpu) * 1000 / len(latencies)
    client_ms = (time.process_time() - client_cpu) * 1000 / len(latencies)
    return [
        f"{percentile(latencies, 50):.2f}",
        f"{percentile(latencies, 95):.2f}",
        f"{percentile(latencies, 99):.2f}",
        f"{len(latencies) / duration:,.0f}",
        f"{server_ms:.3f}",
        f"{client_ms:.3f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per row")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args()

    import tempfile

    from saleor_crm_plugin.core.tables import format_table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for server in ("granian", "gunicorn"):
            port = free_port()
            process = serve(server, port, args.workers, args.threads, Path(tmp) / "floor.db")
            try:
                for clients in (1, args.clients):
                    figures = load(port, process.pid, clients, args.duration)
                    rows.append([server, str(clients), *figures])
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    table = format_table(
        [
            "server",
            "clients",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s",
            "server CPU ms/req",
            "client CPU ms/req",
        ],
        rows,
    )
    print(table)
    if not args.no_write:
        write_section(
            "HTTP floor",
            f"`python -m bench.http_floor --clients {args.clients}`: `GET /healthz` (a Django "
            "`JsonResponse`, no database) through `saleor-crm serve`, "
            f"{args.workers} workers x {args.threads} threads, closed-loop keep-alive clients on "
            f"raw sockets on the same machine, {args.duration:.0f} s per row after 1 s of warm-up. "
            "This is what the stack costs before any of our code runs: every HTTP target "
            "(GraphQL, webhook acknowledgements) is met or missed on top of it.\n\n"
            f"```\n{table}\n```",
        )


if __name__ == "__main__":
    main()
