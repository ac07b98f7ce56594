"""PostgreSQL's side of the drain, probed statement by statement on a drained database.

``bench.worker_cpu --statements`` names the statements that cost PostgreSQL CPU in a drain;
this asks *why* for the two largest, on the rows a ``bench.worker_cpu`` run left behind
(``BENCH_WORKER_DB``, with ``BENCH_DB_SUFFIX``), by the backend's own CPU
(``/proc/<pid>/schedstat``, nanoseconds) around each statement, several rounds alternated
(the machine is shared: compare medians, and the variants with each other, not with other
runs):

* ``lines``: the order lines' COPY into a scratch copy of the line table (same columns,
  defaults and fillfactor), first half loaded untimed, second half timed, with the indexes
  as shipped and with variants (no ``product_id`` index, ``COLLATE "C"``, a hash index, only
  the primary key), so each index's share of a line's insert is the difference;
* ``bodies``: the inbox's raw bodies inserted, read back as the claim reads them, and
  updated as the ``done`` UPDATE does (a non-HOT update: the status is indexed), in a scratch
  table per TOAST storage (``extended`` with lz4 as shipped, ``external``, ``main``), with the
  WAL bytes of the update.

* ``--callgrind``: PostgreSQL's *instructions* for a statement of the drain instead of its
  CPU time, in a private cluster (``initdb`` in /tmp) loaded with the drained database's
  tables (``pg_dump``), by ``postgres --single`` under ``valgrind --tool=callgrind
  --toggle-collect=PortalRun --toggle-collect=CommitTransactionCommand`` (every statement's
  execution, every commit with its deferred foreign key checks; the start-up and the load
  are outside). Each case runs twice, with one and with two measured batches after the same
  set-up, and the difference is one batch, per row: instruction counts, which do not move
  with the machine's load as CPU times do. Cases (``_done_cases``, ``_ledger_cases``;
  ``--case`` keeps those whose name contains it): the inbox's ``done`` UPDATE (500 rows set
  back to pending, as the claim leaves them) as shipped before feat/p14, with its ids also
  bound as ``= ANY``, and with its arrays as sub-selects (feat/p14's), each as a custom and
  as a generic plan; and the ledger entries' INSERT with its commit, as the schema is,
  without the ``lot_id`` index and without the foreign keys.

    python -m bench.worker_pg_probes [--rounds 4] [--only lines|bodies]
    python -m bench.worker_pg_probes --callgrind [--batch-size 500] [--case TEXT]

The scratch tables (``w12_probe_*``) are dropped at the end. Nothing here changes the code's
behaviour; docs/benchmarks.md ("PostgreSQL's CPU per event in the drain") has the figures.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import psycopg

from bench._common import db_name, pg_url, private_cluster, single_user_total

DB_NAME = os.environ.get("BENCH_WORKER_DB", "crm_bench_worker_cpu")
LINES = "saleor_crm_plugin_orderline"
INBOX = "saleor_crm_plugin_inboxevent"

# Index variants of the scratch line table, beside its primary key.
LINE_VARIANTS = {
    "as shipped": [
        "CREATE UNIQUE INDEX ON {t} (order_id, saleor_line_id)",
        "CREATE INDEX ON {t} (product_id)",
    ],
    'product_id COLLATE "C"': [
        "CREATE UNIQUE INDEX ON {t} (order_id, saleor_line_id)",
        'CREATE INDEX ON {t} (product_id COLLATE "C")',
    ],
    "product_id hash": [
        "CREATE UNIQUE INDEX ON {t} (order_id, saleor_line_id)",
        "CREATE INDEX ON {t} USING hash (product_id)",
    ],
    "no product_id index": ["CREATE UNIQUE INDEX ON {t} (order_id, saleor_line_id)"],
    "primary key only": [],
}
BODY_STORAGES = ("extended", "external", "main")


def _cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def _connect(url: str) -> tuple[psycopg.Connection, int]:
    conn = psycopg.connect(url, autocommit=True)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    return conn, pid


def _copy_out(conn: psycopg.Connection, query: str) -> bytes:
    with conn.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
        return b"".join(bytes(chunk) for chunk in copy)


def _copy_in(conn: psycopg.Connection, table: str, data: bytes) -> None:
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
        copy.write(data)


def probe_lines(url: str, rounds: int) -> dict[str, list[float]]:
    """µs of backend CPU per line of the second half's COPY, per index variant."""
    table = "w12_probe_lines"
    with psycopg.connect(url) as conn:
        first = _copy_out(conn, f"SELECT * FROM {LINES} ORDER BY id LIMIT 30000")
        second = _copy_out(conn, f"SELECT * FROM {LINES} ORDER BY id OFFSET 30000")
        fillfactor = conn.execute(
            "SELECT coalesce((SELECT option_value FROM pg_options_to_table(reloptions)"
            " WHERE option_name = 'fillfactor'), '100') FROM pg_class WHERE relname = %s",
            [LINES],
        ).fetchone()[0]
    timed = second.count(b"\n")
    results: dict[str, list[float]] = {name: [] for name in LINE_VARIANTS}
    for _ in range(rounds):
        for name, ddl in LINE_VARIANTS.items():
            conn, pid = _connect(url)
            with conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
                conn.execute(
                    f"CREATE TABLE {table} (LIKE {LINES} INCLUDING DEFAULTS)"
                    f" WITH (fillfactor = {fillfactor}, autovacuum_enabled = off)"
                )
                conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
                for statement in ddl:
                    conn.execute(statement.format(t=table))
                _copy_in(conn, table, first)
                before = _cpu_ns(pid)
                _copy_in(conn, table, second)
                results[name].append((_cpu_ns(pid) - before) / timed / 1000)
                conn.execute(f"DROP TABLE {table}")
    return results


def probe_bodies(url: str, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per body: µs of backend CPU to insert, to read back in batches of 500 and to update
    the (indexed) status, and the update's WAL bytes, per TOAST storage of the body."""
    table = "w12_probe_bodies"
    with psycopg.connect(url) as conn:
        bodies = [
            row[0]
            for row in conn.execute(
                f"SELECT raw_body FROM {INBOX} WHERE raw_body <> '' ORDER BY id LIMIT 4000"
            )
        ]
    count = len(bodies)
    results: dict[str, dict[str, list[float]]] = {
        storage: {"insert": [], "read": [], "update": [], "update WAL bytes": []}
        for storage in BODY_STORAGES
    }
    for _ in range(rounds):
        for storage in BODY_STORAGES:
            conn, pid = _connect(url)
            with conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
                conn.execute(
                    f"CREATE TABLE {table} (id bigint PRIMARY KEY, status text NOT NULL,"
                    " raw_body text NOT NULL) WITH (autovacuum_enabled = off)"
                )
                conn.execute(f"ALTER TABLE {table} ALTER COLUMN raw_body SET COMPRESSION lz4")
                conn.execute(f"ALTER TABLE {table} ALTER COLUMN raw_body SET STORAGE {storage}")
                conn.execute(f"CREATE INDEX ON {table} (id) WHERE status = 'pending'")
                taken = results[storage]
                before = _cpu_ns(pid)
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(
                        f"INSERT INTO {table} VALUES (%s, 'pending', %s)", list(enumerate(bodies))
                    )
                taken["insert"].append((_cpu_ns(pid) - before) / count / 1000)
                before = _cpu_ns(pid)
                for start in range(0, count, 500):
                    conn.execute(
                        f"SELECT id, raw_body FROM {table} WHERE id >= %s AND id < %s",
                        [start, start + 500],
                    ).fetchall()
                taken["read"].append((_cpu_ns(pid) - before) / count / 1000)
                lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                before = _cpu_ns(pid)
                for start in range(0, count, 500):
                    conn.execute(
                        f"UPDATE {table} SET status = 'done' WHERE id >= %s AND id < %s",
                        [start, start + 500],
                    )
                taken["update"].append((_cpu_ns(pid) - before) / count / 1000)
                wal = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", [lsn]
                ).fetchone()[0]
                taken["update WAL bytes"].append(float(wal) / count)
                conn.execute(f"DROP TABLE {table}")
    return results


# The inbox's ``done`` UPDATE of ``_save_translated_done`` as shipped before feat/p14
# (``{extra}`` empty), or with the batch's ids also bound as ``= ANY``; ``_done_cases``
# derives feat/p14's form (the arrays as sub-selects) from it.
DONE_UPDATE = (
    'UPDATE "saleor_crm_plugin_inboxevent" AS t SET "status" = \'done\', '
    '"attempts" = t."attempts" + 1, "last_error" = \'\', "processed_at" = $1, '
    '"source" = v.source, "object_id" = v.object_id, "issued_at" = v.issued_at, '
    '"subject_user_id" = v.subject_user_id, "subject_email_hash" = v.subject_email_hash '
    "FROM unnest($2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], "
    "$7::text[]) AS v(id, source, object_id, issued_at, subject_user_id, subject_email_hash) "
    'WHERE t."id" = v.id{extra}'
)
LEDGER = "saleor_crm_plugin_ledgerentry"
# Tables a case loads into the private cluster (with what their foreign keys reference).
CALLGRIND_TABLES = (
    INBOX,
    "saleor_crm_plugin_customer",
    "saleor_crm_plugin_loyaltyaccount",
    "saleor_crm_plugin_pointlot",
    LEDGER,
)


def _literal(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text.replace("'", "''") + "'"


def _array(values: list[object]) -> str:
    items = []
    for value in values:
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return _literal("{" + ",".join(items) + "}")


def _done_cases(url: str, size: int) -> dict[str, tuple[str, list[str]]]:
    """(set-up, [batch 1, batch 2]) per variant of the ``done`` UPDATE: the newest
    ``2 * size`` rows set back to pending without subject (as the acknowledgement stored them
    and the claim leaves them), vacuumed, then updated with their own translation columns."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, source, object_id, issued_at, subject_user_id, subject_email_hash"
            f" FROM {INBOX} ORDER BY id DESC LIMIT %s",
            [2 * size],
        ).fetchall()
    rows.sort()
    first = rows[0][0]
    setup = (
        f"UPDATE {INBOX} SET status = 'pending', source = '', object_id = '', issued_at = NULL,"
        f" subject_user_id = '', subject_email_hash = '' WHERE id >= {first};\n\n"
        f"VACUUM (ANALYZE) {INBOX};\n\nCHECKPOINT;\n\n"
    )
    batches = []
    for b in range(2):
        part = rows[b * size : (b + 1) * size]
        args = [_literal("2026-12-02T00:00:00+00:00")] + [
            _array([row[c] for row in part]) for c in range(6)
        ]
        batches.append(", ".join(args))
    any_ = ' AND t."id" = ANY($2::bigint[])'
    shipped = DONE_UPDATE.format(extra="")
    # The arrays as sub-selects: unknown to the planner, so it estimates 10 rows for any batch.
    hidden = shipped
    for n, kind in enumerate(("bigint", "text", "text", "timestamptz", "text", "text"), 2):
        hidden = hidden.replace(f"${n}::{kind}[]", f"(SELECT ${n}::{kind}[])")
    cases = {}
    for name, sql, generic in (
        ("done UPDATE as shipped (custom plan)", shipped, False),
        ("done UPDATE, ids also = ANY (custom plan)", DONE_UPDATE.format(extra=any_), False),
        ("done UPDATE, arrays as sub-selects (custom plan)", hidden, False),
        ("done UPDATE as shipped, generic plan", shipped, True),
        ("done UPDATE, ids also = ANY, generic plan", DONE_UPDATE.format(extra=any_), True),
        ("done UPDATE, arrays as sub-selects, generic plan", hidden, True),
    ):
        mode = "force_generic_plan" if generic else "force_custom_plan"
        prepare = f"SET plan_cache_mode = {mode};\n\nPREPARE upd AS {sql};\n\n"
        cases[name] = (
            setup + prepare,
            [f"BEGIN;\n\nEXECUTE upd({args});\n\nCOMMIT;\n\n" for args in batches],
        )
    return cases


def _ledger_cases(url: str, size: int) -> dict[str, tuple[str, list[str]]]:
    """(set-up, [batch 1, batch 2]) per schema variant of the ledger entries' insert: the
    newest ``2 * size`` entries moved to a side table, then inserted back with the commit
    that checks their deferred foreign keys."""
    with psycopg.connect(url) as conn:
        first = conn.execute(
            f"SELECT min(id) FROM (SELECT id FROM {LEDGER} ORDER BY id DESC LIMIT %s) s",
            [2 * size],
        ).fetchone()[0]
        keys = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [LEDGER],
        ).fetchall()
        lot_index = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%(lot_id)'",
            [LEDGER],
        ).fetchone()[0]
    setup = (
        f"CREATE TABLE side AS SELECT * FROM {LEDGER} WHERE id >= {first};\n\n"
        f"DELETE FROM {LEDGER} WHERE id >= {first};\n\n"
        f"VACUUM (ANALYZE) {LEDGER};\n\nCHECKPOINT;\n\n"
    )
    batches = [
        f"BEGIN;\n\nINSERT INTO {LEDGER} SELECT * FROM side WHERE id >= {first + b * size}"
        f" AND id < {first + (b + 1) * size} ORDER BY id;\n\nCOMMIT;\n\n"
        for b in range(2)
    ]
    drop_keys = "".join(f'ALTER TABLE {LEDGER} DROP CONSTRAINT "{k}";\n\n' for (k,) in keys)
    return {
        "ledger entries' INSERT + COMMIT as shipped": (setup, batches),
        "ledger entries, no lot_id index": (f'DROP INDEX "{lot_index}";\n\n' + setup, batches),
        "ledger entries, no foreign keys": (drop_keys + setup, batches),
    }


def probe_callgrind(url: str, size: int, only: str = "") -> dict[str, float]:
    """PostgreSQL instructions per row of each case (see the module's docstring)."""
    dump = ["pg_dump", "--no-owner", *(f"-t{t}" for t in CALLGRIND_TABLES), url]
    data_sql = subprocess.run(dump, capture_output=True, check=True).stdout
    cases = {**_done_cases(url, size), **_ledger_cases(url, size // 4)}
    cases = {name: case for name, case in cases.items() if only in name}
    sizes = {name: size if name.startswith("done") else size // 4 for name in cases}
    work = Path(tempfile.mkdtemp(prefix="crm-p14-pgsingle-"))
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    try:
        os.chmod(work, 0o777)
        bindir, data = private_cluster(work, data_sql)
        results = {}
        for name, (setup, batches) in cases.items():
            counts = []
            for n in (1, 2):
                copy = work / "run"
                run(["cp", "-a", str(data), str(copy)])
                out = work / f"callgrind-{n}.out"
                script = setup + "".join(batches[:n])
                toggles = ("PortalRun", "CommitTransactionCommand")
                counts.append(single_user_total(bindir, copy, out, script, toggles))
                shutil.rmtree(copy)
            results[name] = (counts[1] - counts[0]) / sizes[name]
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _line(name: str, values: list[float]) -> str:
    runs = " ".join(f"{value:.1f}" for value in values)
    return f"  {name:<24} median {statistics.median(values):8.1f}   runs {runs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--only", choices=("lines", "bodies"))
    parser.add_argument("--callgrind", action="store_true", help="instructions, see above")
    parser.add_argument("--batch-size", type=int, default=500, help="with --callgrind")
    parser.add_argument("--case", default="", help="with --callgrind: cases naming this")
    args = parser.parse_args()
    url = pg_url(db_name(DB_NAME))
    if args.callgrind:
        print("PostgreSQL instructions per row (callgrind, postgres --single):")
        for name, value in probe_callgrind(url, args.batch_size, args.case).items():
            print(f"  {name:<48} {value:12,.0f}")
        return
    if args.only in (None, "lines"):
        print("order lines' COPY, µs of backend CPU per line (second half timed):")
        for name, values in probe_lines(url, args.rounds).items():
            print(_line(name, values))
    if args.only in (None, "bodies"):
        print("raw bodies by TOAST storage, per body (µs of backend CPU; WAL bytes):")
        for storage, taken in probe_bodies(url, args.rounds).items():
            for what, values in taken.items():
                print(_line(f"{storage}: {what}", values))


if __name__ == "__main__":
    main()
