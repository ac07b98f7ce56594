"""PostgreSQL's cost of the inbox's own writes per event: the acknowledgement's insert and the
worker's claim and outcome update, without the projection around them.

Under a live stream PostgreSQL spends ~0.95 ms per event against ~0.6 ms on a backlog; the
difference is the inbox's bookkeeping (one insert transaction per delivery, claims and
outcome updates of small batches). ``bench.worker_cpu`` and ``bench.worker_drain`` measure it
buried in the projection's statements; this isolates it. On a fresh database (the code on
``PYTHONPATH`` migrates it, so two checkouts compare their schemas):

1. ``--events`` UCI deliveries are stored with ``inbox.store_webhook``, one transaction each
   (autocommit, as the acknowledgement runs): the backend's CPU (``/proc``) per insert.
2. They are drained by the inbox's own steps only, in batches of ``--batch-size`` (about what
   a drain takes under a live stream): claim (``FOR UPDATE SKIP LOCKED``), the translation's
   columns noted (translated before timing), ``done``, ``_save_outcomes``, commit. The
   backend's CPU per event.
3. Deterministic counters of the same work: buffer accesses of the inbox's indexes and heap
   (``pg_statio_user_indexes`` / ``_tables``, this database only) per event, and the WAL
   that ``EXPLAIN (ANALYZE, WAL)`` reports for 500 more inserts and their outcome updates.
4. ``--looks`` linger looks (``inbox._linger_probe``, autocommit, 300 rows pending): each
   locks a row, so its transaction commits WAL; backend CPU and wall clock per look.

    python -m bench.inbox_writes [--events 6000] [--batch-size 100] [--looks 1000]

CPU times come from ``/proc`` in clock ticks and move with the machine's load; the buffer and
WAL counts do not, so compare checkouts on those first and on CPU over alternated runs.

``--callgrind`` instead counts PostgreSQL's instructions for the two statements every event
runs against the inbox, deterministically: the table's DDL as the code on ``PYTHONPATH``
migrates it is loaded into a private cluster (``initdb`` in a temporary directory), and
``postgres --single`` runs under ``valgrind --tool=callgrind --toggle-collect=ExecuteQuery``
(the prepared statement's execution only: not the parsing of the literal parameters, not
the commit) a script of ``PREPARE`` of the code's own SQL (``_raw_insert_statement`` and
``_translated_done_statement``) and ``EXECUTE`` with UCI deliveries and their translations:
20 and 120 inserts (the difference / 100 is one acknowledgement's INSERT), then 220 inserts
followed by one and by two ``done`` UPDATEs of ``--batch-size`` rows (the difference / the
batch size is one row's share of the outcome update, its statement's set-up included).
Needs ``valgrind`` and PostgreSQL's server binaries (``pg_config --bindir``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import pg_url, private_cluster, recreate_database, single_user_total
from bench._http import process_cpu
from bench.ack_cpu import API_URL, BROKER, CACHE, _cached_deliveries

DB_NAME = os.environ.get("BENCH_INBOX_DB", "crm_bench_inbox_writes")
WAL_SAMPLE = 500
LOOK_ROWS = 300


def _backend() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _io_counters() -> tuple[int, int]:
    """Buffer accesses (hit + read) of the inbox's indexes and of its heap, so far."""
    from django.db import connection

    from saleor_crm_plugin.events.models import InboxEvent

    table = InboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT coalesce(sum(idx_blks_hit + idx_blks_read), 0) FROM pg_statio_user_indexes "
            "WHERE relname = %s",
            [table],
        )
        index = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT heap_blks_hit + heap_blks_read FROM pg_statio_user_tables WHERE relname = %s",
            [table],
        )
        heap = int(cursor.fetchone()[0])
    return index, heap


def _store(deliveries: list[tuple[str, bytes]]) -> list[str]:
    from saleor_crm_plugin.events import inbox
    from saleor_crm_plugin.events.from_webhook import event_kind_from_header, webhook_dedupe_key

    keys = []
    for name, body in deliveries:
        kind = event_kind_from_header(name)
        key = webhook_dedupe_key(API_URL, kind, body)
        keys.append(key)
        inbox.store_webhook(
            dedupe_key=key,
            kind=kind.value,
            saleor_api_url=API_URL,
            raw_body=body.decode(),
            kick=False,
        )
    return keys


def _translations(deliveries: list[tuple[str, bytes]]) -> dict[str, Any]:
    from saleor_crm_plugin.events.from_webhook import (
        event_kind_from_header,
        translate_stored_webhook,
        webhook_dedupe_key,
    )

    events = {}
    for name, body in deliveries:
        kind = event_kind_from_header(name)
        key = webhook_dedupe_key(API_URL, kind, body)
        events[key] = translate_stored_webhook(kind.value, body.decode(), API_URL, key)
    return events


def _drain(events: dict[str, Any], size: int) -> int:
    """The inbox's part of ``_process_batch``: claim, note, done, save outcomes, commit."""
    from django.db import transaction
    from django.utils import timezone

    from saleor_crm_plugin.events import inbox

    drained = 0
    while True:
        with transaction.atomic():
            rows = inbox._claim(size, timezone.now())
            if not rows:
                return drained
            translated = set()
            for row in rows:
                row.attempts += 1
                inbox._note_translation(row, events[row.dedupe_key])
                translated.add(row.pk)
                inbox._mark_done(row)
            inbox._save_outcomes(rows, translated)
        drained += len(rows)


def _wal(sql: str, params: list[Any]) -> tuple[int, int, int]:
    """WAL records, full-page images and bytes of one statement, run for real."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, WAL, FORMAT JSON) {sql}", params)
        raw = cursor.fetchone()[0]
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return plan["WAL Records"], plan["WAL FPI"], plan["WAL Bytes"]


def _wal_sample(deliveries: list[tuple[str, bytes]], size: int) -> dict[str, float]:
    """WAL per event of the insert and of the outcome update, by ``EXPLAIN (ANALYZE, WAL)``
    of the very statements ``store_webhook`` and ``_save_translated_done`` run."""
    from django.db import transaction
    from django.utils import timezone

    from saleor_crm_plugin.core.bulk import array_param
    from saleor_crm_plugin.events import inbox
    from saleor_crm_plugin.events.from_webhook import event_kind_from_header, webhook_dedupe_key

    events = _translations(deliveries)
    totals = {"insert": [0, 0, 0], "update": [0, 0, 0]}
    for name, body in deliveries:
        kind = event_kind_from_header(name)
        now = timezone.now()
        params = [webhook_dedupe_key(API_URL, kind, body), kind.value, API_URL, body.decode()]
        for i, value in enumerate(_wal(inbox._raw_insert_statement(), [*params, now, now])):
            totals["insert"][i] += value
    while True:
        with transaction.atomic():
            rows = inbox._claim(size, timezone.now())
            if not rows:
                break
            for row in rows:
                inbox._note_translation(row, events[row.dedupe_key])
            params = [
                timezone.now(),
                array_param([r.pk for r in rows]),
                *(
                    array_param([getattr(r, name) for r in rows])
                    for name in inbox._TRANSLATED_COLUMNS
                ),
            ]
            for i, value in enumerate(_wal(inbox._translated_done_statement(), params)):
                totals["update"][i] += value
    count = len(deliveries)
    return {
        f"{step} WAL {what} per event": value / count
        for step, values in totals.items()
        for what, value in zip(("records", "full-page images", "bytes"), values, strict=True)
    }


def _looks(deliveries: list[tuple[str, bytes]], count: int, size: int) -> tuple[float, float]:
    """Backend CPU and wall clock per linger look (``inbox._linger_probe``, autocommit as
    ``process_kicked`` runs it) with ``deliveries`` stored and pending: each look locks the
    oldest unclaimed row (``FOR KEY SHARE``), so its transaction commits WAL."""
    _store(deliveries)
    backend = _backend()
    from saleor_crm_plugin.events import inbox

    pg0, t0 = process_cpu(backend), time.monotonic()
    for _ in range(count):
        inbox._linger_probe(size)
    pg1, t1 = process_cpu(backend), time.monotonic()
    return (pg1 - pg0) / count * 1e6, (t1 - t0) / count * 1e6


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text.replace("'", "''") + "'"


def _array_literal(values: list[Any]) -> str:
    """A PostgreSQL array's text form (elements double-quoted, ``NULL`` for ``None``)."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
            continue
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return _sql_literal("{" + ",".join(items) + "}")


def _numbered(sql: str) -> str:
    """``%s`` placeholders as ``$1``, ``$2``, ... for ``PREPARE``."""
    parts = sql.split("%s")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


def _single_script(
    deliveries: list[tuple[str, bytes]],
    events: dict[str, Any],
    inserts: int,
    updates: int,
    size: int,
) -> str:
    """``postgres --single -j`` input: ``inserts`` acknowledgement INSERTs, then ``updates``
    ``done`` UPDATEs of ``size`` rows each (ids 1, 2, ... in insertion order)."""
    from datetime import UTC, datetime, timedelta

    from saleor_crm_plugin.events import inbox
    from saleor_crm_plugin.events.from_webhook import event_kind_from_header, webhook_dedupe_key

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    statements = [
        "SET TIME ZONE 'UTC'",
        f"PREPARE ins AS {_numbered(inbox._raw_insert_statement())}",
        f"PREPARE upd AS {_numbered(inbox._translated_done_statement())}",
    ]
    keys = []
    for i, (name, body) in enumerate(deliveries[:inserts]):
        kind = event_kind_from_header(name)
        key = webhook_dedupe_key(API_URL, kind, body)
        keys.append(key)
        at = now + timedelta(microseconds=i)
        values = [key, kind.value, API_URL, body.decode(), at, at]
        statements.append(f"EXECUTE ins({', '.join(_sql_literal(v) for v in values)})")
    for b in range(updates):
        ids = list(range(b * size + 1, (b + 1) * size + 1))
        rows = []
        for key in keys[b * size : (b + 1) * size]:
            event = events[key]
            rows.append(
                (
                    event.source.value,
                    event.object_id[:255],
                    event.issued_at,
                    (event.subject_user_id or "")[:255],
                    inbox.email_hash(event.subject_email),
                )
            )
        columns = [_array_literal([row[c] for row in rows]) for c in range(5)]
        args = [_sql_literal(now + timedelta(seconds=1)), _array_literal(ids), *columns]
        statements.append(f"EXECUTE upd({', '.join(args)})")
    script = "".join(f"{statement};\n\n" for statement in statements)
    assert script.count(";\n\n") == len(statements), "a literal holds the -j terminator"
    return script


def _callgrind(
    dump_url: str,
    deliveries: list[tuple[str, bytes]],
    size: int,
    keep: str = "",
    extra_ddl: str = "",
) -> dict[str, float]:
    """Instructions of one acknowledgement INSERT and of one row's ``done`` UPDATE, counted in
    a private cluster by ``postgres --single`` under callgrind (see the module's docstring)."""
    import shutil
    import subprocess
    import tempfile

    from saleor_crm_plugin.events.models import InboxEvent

    ddl = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "-t", InboxEvent._meta.db_table, dump_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    events = _translations(deliveries)
    work = Path(tempfile.mkdtemp(prefix="crm-pgsingle-"))
    try:
        os.chmod(work, 0o777)
        run = functools.partial(subprocess.run, check=True, capture_output=True)
        extra = (extra_ddl,) if extra_ddl else ()  # a variant of the schema, e.g. an index dropped
        bindir, data = private_cluster(work, ddl.encode(), *extra)
        counts = {}
        for inserts, updates in ((20, 0), (120, 0), (2 * size + 20, 1), (2 * size + 20, 2)):
            copy = work / f"run-{inserts}-{updates}"
            run(["cp", "-a", str(data), str(copy)])
            out = work / f"callgrind-{inserts}-{updates}.out"
            script = _single_script(deliveries, events, inserts, updates, size)
            counts[inserts, updates] = single_user_total(
                bindir, copy, out, script, ("ExecuteQuery",)
            )
            if keep:
                shutil.copy(out, Path(keep) / out.name)
            shutil.rmtree(copy)
        return {
            "INSERT (acknowledgement), instructions per event": (counts[120, 0] - counts[20, 0])
            / 100,
            f"done UPDATE, instructions per row (batches of {size})": (
                counts[2 * size + 20, 2] - counts[2 * size + 20, 1]
            )
            / size,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--looks", type=int, default=1000, help="linger looks to time")
    parser.add_argument(
        "--callgrind", action="store_true", help="count PostgreSQL's instructions instead"
    )
    parser.add_argument("--keep", default="", help="with --callgrind: copy its outputs here")
    parser.add_argument(
        "--extra-ddl", default="", help="with --callgrind: SQL run on the table before counting"
    )
    args = parser.parse_args(argv)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
            "DATABASE_URL": recreate_database(DB_NAME),
            "CELERY_BROKER_URL": BROKER,
            "CACHE_URL": CACHE,
            "CRM_ALLOWED_SALEOR_URLS": API_URL,
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "ERROR",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    import saleor_crm_plugin

    call_command("migrate", verbosity=0)
    if args.callgrind:
        from django.db import connection

        url = pg_url(connection.settings_dict["NAME"])
        deliveries = _cached_deliveries(2 * args.batch_size + 20)
        print(f"code: {os.path.dirname(os.path.dirname(saleor_crm_plugin.__file__))}")
        for label, value in _callgrind(
            url, deliveries, args.batch_size, args.keep, args.extra_ddl
        ).items():
            print(f"  {label}: {value:,.0f}")
        return 0
    deliveries = _cached_deliveries(args.events + WAL_SAMPLE + LOOK_ROWS)
    timed = deliveries[: args.events]
    sample = deliveries[args.events : args.events + WAL_SAMPLE]
    events = _translations(timed)
    backend = _backend()
    index0, heap0 = _io_counters()
    pg0, t0 = process_cpu(backend), time.monotonic()
    _store(timed)
    pg1, t1 = process_cpu(backend), time.monotonic()
    index1, heap1 = _io_counters()
    pg2 = process_cpu(backend)
    drained = _drain(events, args.batch_size)
    pg3 = process_cpu(backend)
    index2, heap2 = _io_counters()
    n = len(timed)
    print(f"code: {os.path.dirname(os.path.dirname(saleor_crm_plugin.__file__))}")
    print(f"events {n}, drained {drained} in batches of {args.batch_size}")
    print(
        f"insert: PostgreSQL backend {(pg1 - pg0) / n * 1e6:.1f} µs/event "
        f"(wall {(t1 - t0) / n * 1e6:.0f} µs), index buffers {(index1 - index0) / n:.2f}, "
        f"heap buffers {(heap1 - heap0) / n:.2f} per event"
    )
    print(
        f"claim + outcome: PostgreSQL backend {(pg3 - pg2) / n * 1e6:.1f} µs/event, "
        f"index buffers {(index2 - index1) / n:.2f}, heap buffers {(heap2 - heap1) / n:.2f} "
        "per event"
    )
    for label, value in _wal_sample(sample, args.batch_size).items():
        print(f"  {label}: {value:.1f}")
    if args.looks:
        cpu, wall = _looks(deliveries[-LOOK_ROWS:], args.looks, args.batch_size * 5)
        print(
            f"linger look ({LOOK_ROWS} rows pending): PostgreSQL backend {cpu:.1f} µs, "
            f"wall {wall:.0f} µs per look"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
