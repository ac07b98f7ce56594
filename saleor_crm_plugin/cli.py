"""``saleor-crm``: the command line of the App service.

Built-in commands run servers and workers; every other command is a Django management command
named ``crm_<name>`` (``saleor-crm replay-inbox`` runs ``crm_replay_inbox``), so each domain
adds its commands without touching this file, and plugin-mode operators run the very same
commands through Saleor's ``manage.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

SETTINGS = "saleor_crm_plugin.app.settings"


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django

    django.setup()


def _crm_commands() -> dict[str, str]:
    from django.core.management import get_commands

    return {
        name.removeprefix("crm_").replace("_", "-"): name
        for name, app in get_commands().items()
        if app == "saleor_crm_plugin" and name.startswith("crm_")
    }


def _serve(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="saleor-crm serve", description="Run the App's HTTP server"
    )
    parser.add_argument("--bind", default=os.environ.get("CRM_BIND", "127.0.0.1:8000"))
    parser.add_argument(
        "--server",
        choices=["granian", "gunicorn"],
        default=os.environ.get("CRM_HTTP_SERVER", "granian"),
        help="granian (default: HTTP parsed in Rust, about half gunicorn's CPU per request, "
        "see docs/benchmarks.md) or gunicorn (gthread)",
    )
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    parser.add_argument("--threads", type=int, default=4, help="request threads per worker")
    parser.add_argument(
        "--graceful-timeout",
        type=int,
        default=int(os.environ.get("CRM_GRACEFUL_TIMEOUT", "30")),
        help="seconds a worker may take to finish its requests after SIGTERM before it is "
        "killed (gunicorn's graceful timeout; granian's workers kill timeout, without which a "
        "granian worker that deadlocks in its shutdown keeps the server from ever exiting)",
    )
    parser.add_argument("--migrate", action="store_true", help="Apply migrations first")
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("CRM_ACCESS_LOG", "1").strip().lower() not in {"0", "false", "no"},
        help="One line per request on stdout (a measurable share of a webhook's CPU under "
        "load: turn it off when the proxy in front already logs requests)",
    )
    parser.add_argument(
        "--balance",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("CRM_CONNECTION_BALANCE", "1").strip().lower()
        not in {"0", "false", "no"},
        help="granian with several workers: a worker holding more than its share of the "
        "requests in flight answers one with 'Connection: close' so that the client's next "
        "connection is placed afresh (core/balance.py; the load is the worker's established "
        "connections where /proc tells them, else its requests in flight)",
    )
    args = parser.parse_args(argv)
    # Written by the App's WSGI handler (``app/handler.py``), not by the server: the workers,
    # gunicorn's forks and granian's spawned processes alike, read it from the environment.
    os.environ["CRM_ACCESS_LOG"] = "1" if args.access_log else "0"
    balance_file = _balance_file(args)
    try:
        _setup_django()
        if args.migrate:
            from django.core.management import call_command

            call_command("migrate", interactive=False)
        if args.server == "granian":
            _serve_granian(args)
        else:
            _serve_gunicorn(args)
    finally:
        if balance_file is not None:
            os.unlink(balance_file)
    return 0


def _balance_file(args: argparse.Namespace) -> str | None:
    """Granian with several workers and ``--balance``: the small file through which the
    workers share their load (``core/balance.py``), created before anything else, its path in
    ``CRM_CONNECTION_BALANCE_FILE`` (Django's settings are read in this process before granian
    forks its workers from it), removed when the server stops. In ``/dev/shm`` where there
    is one: it never needs to reach a disk. Not for gunicorn: it imports the application in
    its master, which would take a worker's slot."""
    os.environ.pop("CRM_CONNECTION_BALANCE_FILE", None)
    if not (args.balance and args.server == "granian" and args.workers > 1):
        return None
    from saleor_crm_plugin.core import balance

    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="saleor-crm-balance-", dir=shm)
    os.close(fd)
    balance.create(path, args.workers)
    os.environ["CRM_CONNECTION_BALANCE_FILE"] = path
    return path


def _serve_granian(args: argparse.Namespace) -> None:
    """Granian parses HTTP and keeps connections in Rust, then calls the same WSGI application
    in ``threads`` blocking threads per worker process; the workers import the application
    themselves (spawned, so Django is set up once per worker, like gunicorn's)."""
    from granian.constants import Interfaces
    from granian.server import Server

    host, _, port = args.bind.rpartition(":")  # granian takes them apart, gunicorn whole
    Server(
        "saleor_crm_plugin.app.wsgi:application",
        address=host.strip("[]") or "127.0.0.1",
        port=int(port or 8000),
        interface=Interfaces.WSGI,
        workers=args.workers,
        blocking_threads=args.threads,
        websockets=False,
        log_access=False,  # the App writes it (``app/handler.py``): see ``_serve``
        respawn_failed_workers=True,
        workers_kill_timeout=max(args.graceful_timeout, 1),
    ).serve()


def _serve_gunicorn(args: argparse.Namespace) -> None:
    from gunicorn.app.base import BaseApplication

    from saleor_crm_plugin.app.wsgi import application

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", args.bind)
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("graceful_timeout", args.graceful_timeout)
            self.cfg.set("accesslog", None)  # the App writes it: see ``_serve``

        def load(self):  # type: ignore[no-untyped-def]
            return application

    Server().run()


def _worker(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="saleor-crm worker", description="Run a Celery worker")
    parser.add_argument("--queues", default="ingest,analytics,ml")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--beat", action="store_true", help="Also run the periodic scheduler")
    parser.add_argument("--loglevel", default="info")
    parser.add_argument(
        "--mingle",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Celery's start-up exchange with other workers (revoked task ids, clocks): it "
        "waits a second for replies before consuming, and nothing of ours revokes tasks",
    )
    args = parser.parse_args(argv)
    # Celery's Django fix-up runs Django's system checks when a worker starts and discards
    # their findings (``serve`` and ``migrate`` report them); loading every URL and view for
    # nothing was a tenth of the start-up. Set CELERY_SKIP_CHECKS= (empty) to run them anyway.
    os.environ.setdefault("CELERY_SKIP_CHECKS", "1")
    _setup_django()
    from saleor_crm_plugin.app.celery import app

    worker_argv = ["worker", "-Q", args.queues, "-l", args.loglevel]
    if not args.mingle:
        # Gossip (worker-to-worker events) is only ever used with mingle's peers; both off
        # saves the second a restarted worker spent before taking the backlog.
        worker_argv += ["--without-mingle", "--without-gossip"]
    if args.concurrency:
        worker_argv += ["-c", str(args.concurrency)]
    if args.beat:
        worker_argv += ["-B", "-s", str(Path(tempfile.gettempdir()) / "saleor-crm-beat")]
    app.worker_main(worker_argv)
    return 0


def _beat(argv: Sequence[str]) -> int:
    _setup_django()
    from saleor_crm_plugin.app.celery import app

    app.start(["beat", "-l", "info", *argv])
    return 0


def _demo_database() -> None:
    """The demo runs on embedded defaults: a fresh SQLite file unless DATABASE_URL is set."""
    if "DATABASE_URL" not in os.environ:
        path = Path(tempfile.mkdtemp(prefix="saleor-crm-demo-")) / "demo.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"


BUILTINS = {
    "serve": ("Run the App's HTTP server (granian or gunicorn)", _serve),
    "worker": ("Run a Celery worker (queues ingest, analytics, ml)", _worker),
    "beat": ("Run Celery beat (periodic jobs)", _beat),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        _setup_django()
        print("usage: saleor-crm <command> [options]\n\ncommands:")
        for name, (text, _) in BUILTINS.items():
            print(f"  {name:16} {text}")
        print(f"  {'migrate':16} Create or update the database tables")
        for name, command in sorted(_crm_commands().items()):
            from django.core.management import load_command_class

            help_text = load_command_class("saleor_crm_plugin", command).help.split(". ")[0]
            print(f"  {name:16} {help_text}")
        return 0
    name, rest = args[0], args[1:]
    if name in BUILTINS:
        return BUILTINS[name][1](rest)
    if name == "demo":
        _demo_database()
    _setup_django()
    from django.core.management import call_command, execute_from_command_line

    if name == "migrate":
        execute_from_command_line(["saleor-crm", "migrate", *rest])
        return 0
    commands = _crm_commands()
    if name not in commands:
        print(f"saleor-crm: unknown command {name!r}; see saleor-crm --help", file=sys.stderr)
        return 2
    if name == "demo":
        call_command("migrate", interactive=False, verbosity=0)
    execute_from_command_line(["saleor-crm", commands[name], *rest])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
