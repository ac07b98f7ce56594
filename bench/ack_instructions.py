"""Instructions per acknowledged webhook delivery, counted by callgrind (repeatable under load).

``bench.ack_cpu`` measures CPU time, which on two shared cores moves by 10-20% between runs.
This runs the same in-process acknowledgement loop (the App's WSGI handler, PostgreSQL, Redis)
under ``valgrind --tool=callgrind`` twice, with ``--small`` and ``--large`` deliveries, and
reports the difference divided by the extra deliveries: start-up, imports and the warm-up cancel
out. The database is recreated and migrated and the deliveries are signed before valgrind
starts (natively, RSA signing is no part of the ack), so only the loop differs between the two
runs. The count covers this Python process only, not PostgreSQL's backend, and no Celery
publish (one per drain under load, amortised over its batch).

    python -m bench.ack_instructions [--small 50] [--large 350] [--keep large.out] [--view]

``--view`` calls the webhook view alone on a ``WSGIRequest`` instead of the App's handler, so
the difference between the two counts is Django's pipeline around the view.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import ack_cpu
from bench._common import callgrind_total, recreate_database

SIGNED = Path(tempfile.gettempdir()) / f"crm-bench-ack-signed-{os.getuid()}.pickle"
WARM_UP = 20


def _env(database_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": ack_cpu.BROKER,
        "CACHE_URL": ack_cpu.CACHE,
        "CRM_ALLOWED_SALEOR_URLS": ack_cpu.API_URL,
        # The marker outlives the run (no worker clears it here), so only the warm-up publishes
        # a task: with 0.05 s it expires every second of valgrind's slow wall clock and the
        # count would depend on how slowly the run went.
        "CRM_INBOX_KICK_COALESCE_SECONDS": "3600",
        "SECRET_KEY": "bench-secret",
        "LOG_LEVEL": "ERROR",
        # Django's set-up imports numpy, whose OpenBLAS threads spin waiting for work for a
        # while: callgrind counts the spinning, which follows valgrind's wall clock (~120k
        # instructions per ack in one run, none in another). The ack uses no BLAS.
        "OPENBLAS_NUM_THREADS": "1",
        # Dict and set probes follow the hash seed: without a fixed one the same tree moved by
        # ~5k instructions per ack between runs (feat/a8's notes), as much as a change measures.
        "PYTHONHASHSEED": "0",
        # The registered instance (and its parsed JWKS) is looked up again every 30 s by
        # default: under valgrind that is one or more SELECTs and RSA key loads per run, and
        # more of them the slower the machine runs (the same tree moved by ~23k instructions
        # per ack between two runs). The bench measures the steady-state acknowledgement.
        "CRM_INSTANCE_CACHE_SECONDS": "86400",
    }


def _signed(count: int) -> dict[str, Any]:
    """Signed deliveries and the JWKS that verifies them, kept across runs."""
    if SIGNED.exists():
        cached = pickle.loads(SIGNED.read_bytes())
        if len(cached["deliveries"]) >= count:
            return cached
    from saleor_crm_plugin.demo.signing import DemoSigner

    signer = DemoSigner.generate()
    raw = ack_cpu._cached_deliveries(count)
    cached = {"jwks": signer.jwks, "deliveries": [(e, b, signer.sign(b)) for e, b in raw]}
    SIGNED.write_bytes(pickle.dumps(cached))
    return cached


def _prepare(database_url: str, jwks: dict[str, Any]) -> None:
    """A fresh, migrated database with the registered instance, in a child process (Django
    is set up once per process)."""
    code = (
        "import django, json, sys; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from saleor_crm_plugin.app.models import SaleorInstance;"
        "SaleorInstance.objects.create(saleor_api_url=sys.argv[1], app_id='QXBwOjk=',"
        " jwks=json.loads(sys.argv[2]))"
    )
    import json

    env = {**os.environ, **_env(database_url)}
    subprocess.run(
        [sys.executable, "-c", code, ack_cpu.API_URL, json.dumps(jwks)], env=env, check=True
    )


def _view_application(environ: dict[str, Any], start_response: Any) -> Any:
    """``--view``: the webhook view alone on a ``WSGIRequest`` (no request signals, no
    middleware, no headers list, no close), to split the handler's count into Django's
    pipeline and the acknowledgement's own work."""
    from django.core.handlers.wsgi import WSGIRequest

    from saleor_crm_plugin.app.views import saleor_webhook

    response = saleor_webhook(WSGIRequest(environ))
    start_response(f"{response.status_code} {response.reason_phrase}", [])
    return [response.content]


def _loop(count: int, view: bool = False) -> None:
    """The measured process: warm up, then acknowledge ``count`` fresh deliveries."""
    import django

    django.setup()
    import redis

    from saleor_crm_plugin.app.wsgi import application

    if view:
        application = _view_application  # type: ignore[assignment]

    redis.Redis.from_url(ack_cpu.CACHE).flushdb()
    deliveries = pickle.loads(SIGNED.read_bytes())["deliveries"][: WARM_UP + count]
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> Any:
        statuses.append(status)
        return lambda data: None

    for event, body, signature in deliveries:
        result = application(ack_cpu._environ(event, body, signature), start_response)
        b"".join(result)
        if hasattr(result, "close"):  # as a WSGI server does: a list has none
            result.close()
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"non-200 answers: {bad[:3]}")


def _instructions(
    count: int, database: str, jwks: dict[str, Any], out: Path, view: bool = False
) -> int:
    database_url = recreate_database(database)
    _prepare(database_url, jwks)
    env = {**os.environ, **_env(database_url)}
    command = [sys.executable, "-m", "bench.ack_instructions", "--loop", str(count)]
    command += ["--view"] if view else []
    return callgrind_total(command, out, env)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=350)
    parser.add_argument("--keep", type=Path, help="keep the large run's callgrind file here")
    parser.add_argument(
        "--view", action="store_true", help="the view alone on a WSGIRequest (no pipeline)"
    )
    parser.add_argument("--loop", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop is not None:
        _loop(args.loop, args.view)
        return 0
    jwks = _signed(WARM_UP + args.large)["jwks"]
    database = os.environ.get("BENCH_ACK_DB", "crm_bench_ack_cpu") + "_callgrind"
    with tempfile.TemporaryDirectory() as tmp:
        small = _instructions(args.small, database, jwks, Path(tmp) / "small.out", args.view)
        large_out = args.keep or Path(tmp) / "large.out"
        large = _instructions(args.large, database, jwks, large_out, args.view)
    per_ack = (large - small) / (args.large - args.small)
    print(
        f"instructions: {small:,} ({args.small} acks), {large:,} ({args.large} acks); "
        f"per acknowledged delivery: {per_ack:,.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
