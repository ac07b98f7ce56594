"""PostgreSQL's instructions per execution of the rendered customer 360 statement
(``graphql/customers/sql_render.py``), counted by callgrind on a single-user backend.

The shared server's backend CPU moves by 10-15% between rounds, so (as feat/g11 did by
hand) this copies ``bench.graphql_instructions``' database (200 customers x 12 orders x 3
lines; seed it first with that bench, same ``BENCH_DB_SUFFIX``) into a private cluster under
/tmp, then runs ``postgres --single`` under ``valgrind --tool=callgrind`` on ``PREPARE`` of
the bench document's statement and ``EXECUTE`` of it for the 20 first customers in turn,
``--small`` and ``--large`` times: the difference over the extra executions is one
execution (a generic plan after five, as psycopg's prepared statement gets). The output of
the large run is hashed, so two trees' statements are seen to answer the same bytes.

    python -m bench.sql_render_pg [--code <tree>] [--fractional] [--small 20] [--large 120]

``--code`` names the tree whose ``sql_render`` compiles the statement (default: this
checkout); ``--fractional`` measures on a copy whose amounts have fractions and whose
timestamps have microseconds (closer to a real shop than the bench's integral data).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import as_postgres, callgrind_total

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = Path(tempfile.gettempdir()) / "crm-sql-render-pg"
USERS = 20
# PostgreSQL refuses to run as root: the cluster and its backends run as ``postgres`` then.
_AS = as_postgres([])

# Gives some amounts three decimals, some trailing zeros, and timestamps microseconds.
_FRACTIONAL = """
UPDATE saleor_crm_plugin_order SET total_gross = total_gross + 0.49, total_net = total_net + 0.125,
  created_at = created_at + (id % 997) * interval '1 microsecond';
UPDATE saleor_crm_plugin_orderline SET unit_price_gross = unit_price_gross + 0.95,
  total_price_gross = total_price_gross + 0.1;
UPDATE saleor_crm_plugin_customerchannelstats SET total_spent = total_spent + 0.999;
"""


def _compile(code: Path, database_url: str) -> tuple[str, list[str]]:
    """The bench document's statement as ``sql_render`` of ``code`` compiles it, its named
    placeholders replaced by ``$n``, and those names in order (in a child process, so
    ``PYTHONPATH`` alone decides the tree)."""
    script = (
        "import django, json, sys\n"
        "django.setup()\n"
        f"sys.path.append({str(ROOT)!r})\n"
        "from graphql import parse\n"
        "from bench.graphql import QUERY\n"
        "from saleor_crm_plugin.graphql.api import schema\n"
        "from saleor_crm_plugin.graphql.customers import sql_render\n"
        "c = sql_render.compile_operation(schema, parse(QUERY), None)\n"
        "print(json.dumps([c.sql, [name for name, _ in c.params]]))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret",
        "ALLOWED_HOSTS": "testserver",
    }
    import json

    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=code,  # ``-c`` puts the working directory first on ``sys.path``
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    sql, names = json.loads(out.strip().splitlines()[-1])
    for number, name in enumerate(names, 1):
        sql = sql.replace(f"%({name})s", f"${number}")
    return sql.replace("%%", "%"), names


def _cluster(database_url: str, fractional: bool) -> Path:
    """A private cluster holding a copy of the bench database (made once, reused)."""
    data = CLUSTER / ("fractional" if fractional else "bench")
    if (data / "PG_VERSION").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    if _AS:
        shutil.chown(data.parent, "postgres")
    subprocess.run(
        [*_AS, "initdb", "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    dump = subprocess.run(
        ["pg_dump", "--no-owner", "--no-privileges", database_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # Single-user mode reads one statement per line unless -j; feed the dump through a
    # short-lived private server instead.
    port = "55432"
    subprocess.run(
        [
            *_AS,
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(data / "start.log"),
            "-o",
            f"-p {port} -k /tmp -c listen_addresses=''",
            "-w",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,  # the server keeps a captured pipe open: never read it
        stderr=subprocess.DEVNULL,
    )
    try:
        psql = ["psql", "-h", "/tmp", "-p", port, "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
        subprocess.run(
            [*psql, "-d", "postgres", "-c", "CREATE DATABASE bench"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*psql, "-d", "bench"], input=dump, text=True, check=True, capture_output=True
        )
        if fractional:
            subprocess.run(
                [*psql, "-d", "bench", "-c", _FRACTIONAL], check=True, capture_output=True
            )
        subprocess.run(
            [*psql, "-d", "bench", "-c", "VACUUM ANALYZE"], check=True, capture_output=True
        )
    finally:
        subprocess.run(
            [*_AS, "pg_ctl", "-D", str(data), "-w", "stop"], check=True, capture_output=True
        )
    return data


def _users(data: Path) -> list[str]:
    result = subprocess.run(
        [*_AS, "postgres", "--single", "-D", str(data), "bench"],
        input="SELECT saleor_user_id FROM saleor_crm_plugin_customer ORDER BY id LIMIT 20;\n",
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return re.findall(r'saleor_user_id = "([^"]+)"', result)[:USERS]


def _run(
    data: Path,
    sql: str,
    names: list[str],
    users: list[str],
    count: int,
    out: Path,
    settings: tuple[str, ...] = (),
) -> tuple[int, str]:
    types = {"user": "text", "drafts": "bool"}
    declared = ", ".join(types.get(name, "int8") for name in names)
    values = {"drafts": "false"}
    lines = [
        "SET TIME ZONE 'UTC';",
        "SET jit = off;",
        *settings,
        f"PREPARE s({declared}) AS {sql};",
    ]
    for n in range(count):
        args = []
        for name in names:
            if name == "user":
                args.append("'" + users[n % len(users)] + "'")
            else:
                args.append(values.get(name, "10"))
        lines.append(f"EXECUTE s({', '.join(args)});")
    script = "\n".join(line.replace("\n", " ") for line in lines) + "\n"
    total, stdout = callgrind_total(
        ["postgres", "--single", "-D", str(data), "bench"],
        out,
        None,
        input=script,
        postgres_user=True,
    )
    answers = [line for line in stdout.splitlines() if "?column? = " in line]
    body = "\n".join(answers)
    if len(answers) != count:
        raise SystemExit(stdout[-4000:])
    return total, hashlib.md5(body.encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="source tree to compile with")
    parser.add_argument("--fractional", action="store_true")
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=120)
    parser.add_argument("--keep", type=Path, help="keep both runs' callgrind files in this folder")
    parser.add_argument("--print-sql", action="store_true")
    parser.add_argument(
        "--index-scans",
        action="store_true",
        help="enable_seqscan off: the plan of a shop larger than the bench's 200 customers",
    )
    parser.add_argument(
        "--sql-file", type=Path, help="measure this (hand-edited) statement, $n as compiled"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench._common import db_name, pg_url
    from bench.graphql_instructions import DATABASE

    database_url = pg_url(db_name(DATABASE))
    sql, names = _compile(args.code.resolve(), database_url)
    if args.sql_file:
        sql = args.sql_file.read_text().strip()
    if args.print_sql:
        print(sql)
    data = _cluster(database_url, args.fractional)
    users = _users(data)
    with tempfile.TemporaryDirectory(dir=CLUSTER) as tmp:
        if _AS:
            shutil.chown(tmp, "postgres")
        out = Path(tmp)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            if _AS:
                shutil.chown(args.keep, "postgres")
            out = args.keep
        settings = ("SET enable_seqscan = off;",) if args.index_scans else ()
        small, _ = _run(data, sql, names, users, args.small, out / "small.out", settings)
        large, digest = _run(data, sql, names, users, args.large, out / "large.out", settings)
    per = (large - small) / (args.large - args.small)
    print(
        f"{args.code}{' (fractional)' if args.fractional else ''}: {len(sql):,} characters of "
        f"SQL; {small:,} / {large:,} instructions; per execution {per:,.0f}; output md5 {digest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
