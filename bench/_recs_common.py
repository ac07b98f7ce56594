"""Helpers shared by the recommendation benchmarks (``recs_movielens``, ``recs_retail``)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("CRM_DATASETS", REPO.parent / "shared" / "datasets"))
BENCH_DB = os.environ.get("CRM_BENCH_RECS_DB", "crm_bench_recs")
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"


def setup_django() -> None:
    """App settings on the PostgreSQL database ``crm_bench_recs`` (created if missing)."""
    import psycopg

    url = os.environ.get("CRM_BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saleor_crm_plugin.app.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## <title>`` section of docs/benchmarks.md."""
    BENCHMARKS_MD.parent.mkdir(exist_ok=True)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    BENCHMARKS_MD.write_text(text)


def write_subsection(title: str, subtitle: str, body: str) -> None:
    """Replace (or add) the ``### <subtitle>`` block inside the ``## <title>`` section, so
    both recommendation benchmarks share one section without overwriting each other."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", re.S | re.M)
    match = pattern.search(text)
    current = match.group(1) if match else ""
    block = f"### {subtitle}\n\n{body.strip()}\n"
    sub = re.compile(rf"^### {re.escape(subtitle)}\n.*?(?=^### |\Z)", re.S | re.M)
    if sub.search(current):
        current = sub.sub(lambda _: block + "\n", current)
    else:
        current = current.rstrip() + "\n\n" + block
    write_section(title, current)


def machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
        f"{load:.1f} at the end: the machine was shared, so times are upper bounds"
    )
