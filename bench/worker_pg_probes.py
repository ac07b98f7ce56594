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

    python -m bench.worker_pg_probes [--rounds 4] [--only lines|bodies]

The scratch tables (``w12_probe_*``) are dropped at the end. Nothing here changes the code's
behaviour; docs/benchmarks.md ("PostgreSQL's CPU per event in the drain") has the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import psycopg

from bench._common import db_name, pg_url

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


def _line(name: str, values: list[float]) -> str:
    runs = " ".join(f"{value:.1f}" for value in values)
    return f"  {name:<24} median {statistics.median(values):8.1f}   runs {runs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--only", choices=("lines", "bodies"))
    args = parser.parse_args()
    url = pg_url(db_name(DB_NAME))
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
