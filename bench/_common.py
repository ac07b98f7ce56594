"""Shared plumbing for the benchmarks: databases, percentiles, the machine line, and the
``docs/benchmarks.md`` sections each benchmark rewrites with its latest figures."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
PG_BASE = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DATASETS = Path(os.environ.get("CRM_DATASETS", ROOT.parent / "shared" / "datasets"))


def pg_url(database: str) -> str:
    return f"{PG_BASE}/{database}"


def db_name(name: str) -> str:
    """``name`` with ``BENCH_DB_SUFFIX`` appended (once)."""
    suffix = os.environ.get("BENCH_DB_SUFFIX", "")
    return name if name.endswith(suffix) else name + suffix


def recreate_database(name: str) -> str:
    """A fresh database per run, so figures never depend on what an earlier run left.

    ``BENCH_DB_SUFFIX`` is appended to the name, so two checkouts can run one benchmark at
    the same time without dropping each other's database."""
    name = db_name(name)
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the value a q-th share of samples is at or below."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pg = subprocess.run(
            ["psql", pg_url("postgres"), "-Atc", "show server_version"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pg = "?"
    return (
        f"{os.cpu_count()} cores ({cpu or platform.machine()}), Python {platform.python_version()},"
        f" PostgreSQL {pg or '?'}"
    )


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of docs/benchmarks.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    load = os.getloadavg()[0]
    section = (
        f"## {title}\n\nLast run {stamp} on {machine()}; load average (1 min) at the end: "
        f"{load:.1f} (above ~2, other processes shared the two cores).\n\n{body.strip()}\n"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else _HEADER
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    BENCHMARKS_MD.parent.mkdir(exist_ok=True)
    BENCHMARKS_MD.write_text(text)


_HEADER = """# Benchmarks

Speed, memory and model-quality targets are checked here, not by timed tests. Every script under
`bench/` prints a table and rewrites its own section below with its latest figures
(`python -m bench.<name>`; `--no-write` leaves this file alone).
"""


def as_postgres(command: list[str]) -> list[str]:
    """``command`` run as the ``postgres`` user when this process is root: PostgreSQL's
    server programs (``initdb``, ``pg_ctl``, ``postgres --single``) refuse to run as root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def callgrind_total(
    command: list[str],
    out: Path,
    env: dict[str, str] | None,
    *,
    options: tuple[str, ...] = (),
    input: str | None = None,
    postgres_user: bool = False,
) -> tuple[int, str]:
    """Run ``command`` under ``valgrind --tool=callgrind`` (instruction counts repeat whatever
    else the machine does, where CPU times move by 10-20%) and return the instruction total
    from ``out`` with the command's standard output. ``input`` is its standard input;
    ``postgres_user`` runs valgrind and the command through :func:`as_postgres`."""
    valgrind = ["valgrind", "--tool=callgrind", *options, f"--callgrind-out-file={out}", *command]
    result = subprocess.run(
        as_postgres(valgrind) if postgres_user else valgrind,
        env=env,
        input=input,
        check=True,
        capture_output=True,
        text=True,
    )
    return callgrind_count(out), result.stdout


def callgrind_count(out: Path) -> int:
    """The instruction total of a callgrind output file."""
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if match is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(match.group(1))


def private_cluster(work: Path, sql: bytes, *extra: str) -> tuple[str, Path]:
    """PostgreSQL's server directory (``pg_config --bindir``) and a stopped data directory
    made in ``work`` (UTF-8, ``C.UTF-8`` as the benchmark databases, no fsync) whose
    database ``bench`` holds ``sql`` and then each ``extra`` statement (a variant of the
    schema to count, say): what :func:`single_user_total` runs on, copied per count so each
    starts from the same pages. ``work`` must be writable by ``postgres``."""
    bindir = subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    data = work / "data"
    locale = ["-E", "UTF8", "--locale=C.UTF-8"]
    run(as_postgres([f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--no-sync", *locale]))
    port = str(56000 + os.getpid() % 1000)
    options = f"-k {work} -p {port} -c listen_addresses='' -c fsync=off"
    # With a log file: the server would otherwise hold the captured pipes open.
    log = str(work / "server.log")
    run(as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-o", options, "-l", log, "-w", "start"]))
    try:
        psql = ["psql", "-h", str(work), "-p", port, "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
        run(as_postgres([*psql, "-c", "CREATE DATABASE bench"]))
        run(as_postgres([*psql, "-d", "bench"]), input=sql)
        for statement in extra:
            run(as_postgres([*psql, "-d", "bench", "-c", statement]))
    finally:
        run(as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-w", "stop"]))
    return bindir, data


def single_user_total(
    bindir: str, datadir: Path, out: Path, script: str, toggles: tuple[str, ...]
) -> int:
    """PostgreSQL instructions of ``script`` run by ``postgres --single -j`` on ``datadir``
    (database ``bench``, ``fsync=off``) under callgrind, counted only inside the ``toggles``
    functions (the statements' execution, say, not the parsing of their literals). A
    statement that fails fails the count: its ``ERROR`` would otherwise pass as a cheap
    statement. ``bench.inbox_writes --callgrind`` and ``bench.worker_pg_probes --callgrind``
    count their statements this way."""
    command = [f"{bindir}/postgres", "--single", "-j", "-D", str(datadir), "-c", "fsync=off"]
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        *(f"--toggle-collect={name}" for name in toggles),
        f"--callgrind-out-file={out}",
        *command,
        "bench",
    ]
    result = subprocess.run(
        as_postgres(valgrind), input=script, check=True, capture_output=True, text=True
    )
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR:" in line]
    if errors:
        raise SystemExit(f"statements failed under callgrind: {errors[:3]}")
    return callgrind_count(out)
