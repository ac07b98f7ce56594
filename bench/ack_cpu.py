"""CPU cost of one acknowledged webhook delivery, measured in-process.

The HTTP benchmark (``bench.ingest``) shares two cores between the load generator, gunicorn,
the worker and PostgreSQL, so its wall-clock figures are noisy. This one calls the App's WSGI
handler in a loop (Django's request handling, middleware, URL routing, the webhook view:
signature check, one INSERT of the raw body, the coalesced kick; the translation moved to the
worker, see ``bench/worker_cpu.py``) against real PostgreSQL and Redis,
with no HTTP server and no worker, and reports CPU time per delivery of this process and of its
PostgreSQL backend (read from ``/proc``), plus Redis commands per delivery. ``--profile``
prints where the Python time goes (cProfile, top functions by cumulative time).

    python -m bench.ack_cpu [--deliveries 3000] [--repeat 3] [--profile] [--kick-coalesce 0.05]
                            [--explain]

``--explain`` ends with PostgreSQL's side of one more acknowledgement's INSERT, the ack's own
statement and parameters: ``EXPLAIN (ANALYZE, BUFFERS, WAL)`` (buffers touched, WAL records and
bytes, which repeat to the digit where the backend's CPU time does not), rolled back.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import recreate_database
from bench._http import process_cpu

DB_NAME = os.environ.get("BENCH_ACK_DB", "crm_bench_ack_cpu")
CACHE = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/8")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")
API_URL = "https://bench.saleor.local/graphql/"


def _cached_deliveries(count: int) -> list[tuple[str, bytes]]:
    """Building deliveries from the dataset takes longer than measuring them: keep a copy."""
    import pickle

    from bench.ingest import _load_deliveries

    path = Path(os.environ.get("BENCH_ACK_CACHE", "/tmp/crm-bench-ack-deliveries.pickle"))
    if path.exists():
        cached = pickle.loads(path.read_bytes())
        if len(cached) >= count:
            return cached[:count]
    fresh = _load_deliveries(count)
    path.write_bytes(pickle.dumps(fresh))
    return fresh


def _environ(event: str, body: bytes, signature: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/webhooks/saleor",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_SALEOR_EVENT": event,
        "HTTP_SALEOR_DOMAIN": "bench.saleor.local",
        "HTTP_SALEOR_API_URL": API_URL,
        "HTTP_SALEOR_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="distinct per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (fresh bodies each)")
    parser.add_argument("--duplicates", action="store_true", help="re-send round 1's bodies")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN one more INSERT")
    parser.add_argument(
        "--kick-coalesce",
        default="0.05",
        help="CRM_INBOX_KICK_COALESCE_SECONDS (0: one Celery publish per accepted delivery)",
    )
    args = parser.parse_args(argv)

    env = {
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "DATABASE_URL": recreate_database(DB_NAME),
        "CELERY_BROKER_URL": BROKER,
        "CACHE_URL": CACHE,
        "CRM_ALLOWED_SALEOR_URLS": API_URL,
        "CRM_INBOX_KICK_COALESCE_SECONDS": args.kick_coalesce,
        "SECRET_KEY": "bench-secret",
        "LOG_LEVEL": "ERROR",
    }
    os.environ.update(env)
    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.db import connection

    from saleor_crm_plugin.app.models import SaleorInstance
    from saleor_crm_plugin.app.wsgi import application
    from saleor_crm_plugin.demo.signing import DemoSigner
    from saleor_crm_plugin.events.models import InboxEvent

    call_command("migrate", verbosity=0)
    for url in (BROKER, CACHE):
        redis.Redis.from_url(url).flushdb()
    signer = DemoSigner.generate()
    SaleorInstance.objects.create(saleor_api_url=API_URL, app_id="QXBwOjk=", jwks=signer.jwks)
    total = args.deliveries * args.repeat
    raw = _cached_deliveries(total + 20)
    signed = [(e, b, signer.sign(b)) for e, b in raw[:total]]
    rounds = [signed[i * args.deliveries : (i + 1) * args.deliveries] for i in range(args.repeat)]
    if args.duplicates:
        rounds = [rounds[0]] + [rounds[0]] * (args.repeat - 1)

    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> Callable[..., None]:
        statuses.append(status)
        return lambda data: None

    def one(event: str, body: bytes, signature: str) -> None:
        result = application(_environ(event, body, signature), start_response)
        b"".join(result)
        if hasattr(result, "close"):  # as a WSGI server does: a list has none
            result.close()

    # Warm up: connections, the instance cache, imports.
    warm = [(e, b, signer.sign(b)) for e, b in raw[total:]]
    for item in warm:
        one(*item)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    counter = redis.Redis.from_url(CACHE)

    def redis_commands() -> int:
        return int(counter.info("stats")["total_commands_processed"])

    print(f"{'round':>5}  {'py CPU ms/ack':>13}  {'pg CPU ms/ack':>13}  {'wall ms/ack':>11}")
    # Many short rounds: on a shared machine the best (and median) round is the figure least
    # inflated by other processes.
    per_round = []
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    for index, batch in enumerate(rounds, 1):
        statuses.clear()
        pg0, cmd0 = process_cpu(backend), redis_commands()
        c0, w0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for item in batch:
            one(*item)
        if profiler:
            profiler.disable()
        c1, w1 = time.process_time(), time.perf_counter()
        pg1, cmd1 = process_cpu(backend), redis_commands()
        n = len(batch)
        py_ms, pg_ms, wall_ms = (c1 - c0) / n * 1000, (pg1 - pg0) / n * 1000, (w1 - w0) / n * 1000
        per_round.append(py_ms)
        bad = [s for s in statuses if not s.startswith("200")]
        print(
            f"{index:>5}  {py_ms:>13.3f}  {pg_ms:>13.3f}  {wall_ms:>11.3f}"
            f"  redis cmds/ack~{(cmd1 - cmd0) / n:.2f} (server-wide)  non-200: {len(bad)}"
        )
    ordered = sorted(per_round)
    print(
        f"py CPU ms/ack: best {ordered[0]:.3f}, median {ordered[len(ordered) // 2]:.3f} "
        f"over {len(ordered)} rounds; stored rows: {InboxEvent.objects.count()}"
    )
    if args.explain:
        _explain_insert(sorted((b for _, b in raw), key=len)[len(raw) // 2])  # a median body
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())
    return 0


def _explain_insert(body: bytes) -> None:
    """``EXPLAIN (ANALYZE, BUFFERS, WAL)`` of the acknowledgement's INSERT with a body not
    stored yet, in a transaction rolled back (the WAL it wrote is counted all the same)."""
    import hashlib

    from django.db import connection, transaction
    from django.utils import timezone

    from saleor_crm_plugin.events import inbox

    now = timezone.now()
    key = hashlib.sha256(b"bench-explain" + body).hexdigest()
    params = [key, "order_created", API_URL, body.decode(), now, now]
    with transaction.atomic():
        connection.ensure_connection()
        with inbox._psycopg_cursor(connection.connection) as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) " + inbox._raw_insert_statement(),
                params,
            )
            plan = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    print(f"INSERT of a {len(body):,}-byte body, rolled back:")
    print("\n".join("  " + line for line in plan))


if __name__ == "__main__":
    sys.exit(main())
