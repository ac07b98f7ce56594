"""Instructions per drained inbox event, counted by callgrind (repeatable under load).

``bench.worker_cpu`` measures CPU time, which on two shared cores moves by 10-20% between
runs, more than a round of worker optimisation saves. This counts the instructions of the same
in-process drain instead: a template database holds the UCI deliveries stored raw with the
first 4,000 already processed (built once, untimed, by the code on ``PYTHONPATH``); each run
copies it and drains the next ``--events`` under ``valgrind --tool=callgrind``, collecting only
inside the drain (``--toggle-collect`` on the ``exec`` that runs it), with a fixed hash seed.
The count covers this Python process only, not PostgreSQL's backend.

    python -m bench.worker_instructions [--events 2000] [--batch-size 500] [--rebuild]
        [--keep callgrind.out] [--as-worker] [--shuffled]

``--as-worker`` counts what a running Celery worker spends per event. By default the count
also holds work a worker does once: callgrind toggles collection at every entry to and exit
from ``builtin_exec``, which is also how each imported module's code runs, so the modules the
drain imports lazily (``writeback.services`` and, through it, ``requests``, ``urllib3``,
``idna``, ... with their classes made and, under ``PYTHONDONTWRITEBYTECODE``, the project's
sources compiled) are partly counted, and so are parts of start-up's imports. With
``--as-worker`` the process first imports ``saleor_crm_plugin.tasks`` (as Celery's
autodiscovery does at a worker's start), and the drain runs inside ``operator.call``, whose C
function (``_operator_call``, called by nothing else here) is the toggle: exactly the drain is
counted. The default stays, so the figures of rounds 1-8 can still be compared.

``--shuffled`` drains the same deliveries in the order ``bench.ingest`` phase 2 sends them
(shuffled, ``Random(7)``; a template of its own): an order's events then fall into different
batches, as in a live stream, where the UCI order keeps them close together and lets a batch
load each order once for several of its events (docs/benchmarks.md, "The drain's cost by
batch size").

To compare code versions, run it from each checkout with ``BENCH_DB_SUFFIX`` set alike: the
template is shared (its state is the same whichever version built it) and only the drain
differs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from bench._common import callgrind_total, db_name, pg_url, recreate_database
from bench.ack_cpu import API_URL, BROKER, CACHE, _cached_deliveries

WARM = 4000
TEMPLATE = "crm_bench_worker_instr_tpl"
COPY = "crm_bench_worker_instr"


def _env(database_url: str, batch_size: int) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": BROKER,
        "CACHE_URL": CACHE,
        "CRM_ALLOWED_SALEOR_URLS": API_URL,
        "CRM_INBOX_KICK_COALESCE_SECONDS": "0",
        "CRM_INBOX_BATCH_SIZE": str(batch_size),
        "SECRET_KEY": "bench-secret",
        "LOG_LEVEL": "ERROR",
        "PYTHONHASHSEED": "0",
    }


def _template(shuffled: bool) -> str:
    return TEMPLATE + "_shuf" if shuffled else TEMPLATE


def _build_template(events: int, batch_size: int, shuffled: bool = False) -> None:
    """The deliveries stored raw, the first ``WARM`` processed (natively, in a child); with
    ``shuffled`` the drained ones in the order phase 2 of ``bench.ingest`` sends them."""
    url = recreate_database(_template(shuffled))
    order = (
        f"import random\nrest = deliveries[{WARM}:]\nrandom.Random(7).shuffle(rest)\n"
        f"deliveries[{WARM}:] = rest\n"
        if shuffled
        else ""
    )
    code = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from bench.worker_cpu import _store\n"
        "from bench.ack_cpu import _cached_deliveries\n"
        "from saleor_crm_plugin.events import inbox\n"
        f"deliveries = _cached_deliveries({WARM + events})\n"
        + order
        + "_store(deliveries, 'raw')\n"
        f"inbox.process_pending(max_events={WARM})\n"
    )
    subprocess.run([sys.executable, "-c", code], env=_env(url, batch_size), check=True)


def _template_holds(events: int, shuffled: bool = False) -> bool:
    try:
        with psycopg.connect(pg_url(db_name(_template(shuffled)))) as conn:
            pending = conn.execute(
                "SELECT count(*) FROM saleor_crm_plugin_inboxevent WHERE status = 'pending'"
            ).fetchone()
    except psycopg.Error:
        return False
    return bool(pending) and pending[0] >= events


def _copy(shuffled: bool = False) -> str:
    name = db_name(COPY)
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{db_name(_template(shuffled))}"')
    return pg_url(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="drained under callgrind")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the template first")
    parser.add_argument(
        "--as-worker",
        action="store_true",
        help="import the task modules first and count exactly the drain",
    )
    parser.add_argument(
        "--shuffled",
        action="store_true",
        help="drain the events in bench.ingest phase 2's shuffled order",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="also copy callgrind's output file here (for callgrind_annotate)",
    )
    args = parser.parse_args(argv)

    _cached_deliveries(WARM + args.events)  # made natively, outside valgrind
    if args.rebuild or not _template_holds(args.events, args.shuffled):
        _build_template(args.events, args.batch_size, args.shuffled)
    url = _copy(args.shuffled)
    start = (
        "import django; django.setup()\n"
        "from saleor_crm_plugin.events import inbox\n"
        + ("import operator, saleor_crm_plugin.tasks\n" if args.as_worker else "")
        # A worker process's start-up (``app/celery.py``), where the tree has it.
        + "try:\n    from saleor_crm_plugin.core import heap\nexcept ImportError:\n    pass\n"
        "else:\n    heap.settle()\n"
    )
    if args.as_worker:
        code = start + (
            f"drained = operator.call(inbox.process_pending, max_events={args.events})\n"
            "print('drained', drained)\n"
        )
        toggle = "--toggle-collect=_operator_call"
    else:
        code = start + (
            "ns = {'inbox': inbox}\n"
            f"exec('drained = inbox.process_pending(max_events={args.events})', ns)\n"
            "print('drained', ns['drained'])\n"
        )
        toggle = "--toggle-collect=builtin_exec"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        total, stdout = callgrind_total(
            [sys.executable, "-c", code],
            out,
            _env(url, args.batch_size),
            options=(toggle,),
        )
        if args.keep is not None:
            shutil.copyfile(out, args.keep)
    drained = int(re.search(r"drained (\d+)", stdout).group(1))  # type: ignore[union-attr]
    print(
        f"code: {Path(__file__).resolve().parent.parent}; drained {drained} events "
        f"{'as a worker ' if args.as_worker else ''}{'shuffled ' if args.shuffled else ''}"
        f"(batch {args.batch_size}): {total / drained / 1e6:.3f} M instructions per event "
        f"({total:,} in all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
