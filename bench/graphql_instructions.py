"""Instructions per customer 360 request, counted by callgrind (repeatable under load).

``bench.graphql`` measures CPU time, which on two shared cores moves by 10-20% between runs.
This seeds a small database once (200 customers x 12 orders x 3 lines, as ``bench.graphql``
seeds them, no model training: the 360 does not need one), mints the tokens natively, then
runs the in-process view (``graphql_view`` on a ``RequestFactory`` request, SQL included,
PostgreSQL's backend not) under ``valgrind --tool=callgrind`` twice, with ``--small`` and
``--large`` requests after the same warm-up, and reports the difference divided by the extra
requests: start-up, imports and warm-up cancel out.

    python -m bench.graphql_instructions [--small 20] [--large 120] [--code /work/main] [--wsgi]

``--wsgi`` sends each request through the App's WSGI handler (``app.wsgi.application``) as
a WSGI environ instead of calling the view on a ``RequestFactory`` request, so Django's
pipeline around the view (request signals, middleware, headers, the close) is counted too.

``--code`` names the source tree whose ``saleor_crm_plugin`` is measured (default: this
checkout), so two trees are compared on the same database with the same script.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 40
TOKENS = 20
DATABASE = "crm_bench_graphql_instructions"


def _env(database_url: str, code: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(code),
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "SECRET_KEY": "bench-secret",
        "LOG_LEVEL": "ERROR",
        # Django's set-up imports numpy, whose OpenBLAS threads spin waiting for work for a
        # while: callgrind counts the spinning, which follows valgrind's wall clock (one run
        # of this bench gave a base 4% below its others). The 360 uses no BLAS.
        "OPENBLAS_NUM_THREADS": "1",
        # String hashes decide dict probe lengths: with a random seed per process the same
        # requests moved by ~75k instructions between the small and the large run (feat/g8).
        "PYTHONHASHSEED": "0",
    }


def _prepare(database_url: str, tokens_file: Path) -> None:
    """Seed, register the bench key and mint the tokens (in this process, natively)."""
    from bench import graphql

    graphql.setup_django(database_url)
    graphql.seed(200, 12, 3)
    key = graphql.register_saleor()
    tokens = [graphql.mint(key, n) for n in range(1, TOKENS + 1)]
    tokens_file.write_bytes(pickle.dumps(tokens))


def _environ(body: bytes, token: str) -> dict[str, Any]:
    """What granian hands the App for a customer 360 POST."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/graphql/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _wsgi_loop(count: int, tokens: list[str], query: str) -> None:
    """The requests through the App's WSGI handler, read and closed as a server does."""
    from saleor_crm_plugin.app.wsgi import application

    body = json.dumps({"query": query}).encode()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        statuses.append(status)
        return lambda data: None

    for i in range(WARM_UP + count):
        result = application(_environ(body, tokens[i % len(tokens)]), start_response)
        content = b"".join(result)
        if hasattr(result, "close"):  # a list has none
            result.close()
        if statuses[-1] != "200 OK" or b'"errors"' in content:
            raise SystemExit(content[:300])


def _loop(count: int, tokens_file: Path, wsgi: bool = False) -> None:
    """The measured process: warm up, then ``count`` customer 360 requests. Run as a script
    (not ``-m bench...``) so ``PYTHONPATH`` alone decides which tree is imported."""
    import django

    django.setup()
    from django.test import RequestFactory

    import saleor_crm_plugin.app.wsgi  # noqa: F401  (a web worker's start-up, heap settled)
    from saleor_crm_plugin.graphql.views import graphql_view

    sys.path.insert(0, str(ROOT))
    from bench.graphql import QUERY

    tokens = pickle.loads(tokens_file.read_bytes())
    # Under valgrind the large run outlives the 60 s a verified token is remembered, and its
    # requests would pay RSA again part way through (~41k instructions per request, feat/g8):
    # remembered until the tokens expire, each is verified once, in the warm-up.
    from saleor_crm_plugin.core.auth import verified_tokens

    verified_tokens.TTL = float("inf")
    if wsgi:
        _wsgi_loop(count, tokens, QUERY)
        return
    factory = RequestFactory()
    data = json.dumps({"query": QUERY})
    for i in range(WARM_UP + count):
        request = factory.post(
            "/graphql/",
            data=data,
            content_type="application/json",
            headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
        )
        response = graphql_view(request)
        if response.status_code != 200 or b'"errors"' in response.content:
            raise SystemExit(response.content[:300])


def _instructions(
    count: int, env: dict[str, str], tokens_file: Path, out: Path, wsgi: bool = False
) -> int:
    from bench._common import callgrind_total

    command = [sys.executable, str(Path(__file__).resolve()), "--loop", str(count)]
    command += ["--tokens-file", str(tokens_file), *(["--wsgi"] if wsgi else [])]
    return callgrind_total(command, out, env)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=120)
    parser.add_argument("--code", type=Path, default=ROOT, help="source tree to measure")
    parser.add_argument("--no-seed", action="store_true", help="reuse the seeded database")
    parser.add_argument("--keep", type=Path, help="keep the large run's callgrind file here")
    parser.add_argument(
        "--wsgi", action="store_true", help="through the App's WSGI handler, not the view"
    )
    parser.add_argument("--loop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tokens-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop is not None:
        _loop(args.loop, args.tokens_file, args.wsgi)
        return 0
    sys.path.insert(0, str(ROOT))
    from bench._common import db_name, pg_url, recreate_database

    tokens_file = Path(tempfile.gettempdir()) / f"{db_name(DATABASE)}-tokens.pickle"
    if args.no_seed and tokens_file.exists():
        database_url = pg_url(db_name(DATABASE))
    else:
        database_url = recreate_database(DATABASE)
        _prepare(database_url, tokens_file)
    env = _env(database_url, args.code.resolve())
    with tempfile.TemporaryDirectory() as tmp:
        small = _instructions(args.small, env, tokens_file, Path(tmp) / "small.out", args.wsgi)
        large_out = args.keep or Path(tmp) / "large.out"
        large = _instructions(args.large, env, tokens_file, large_out, args.wsgi)
    per_request = (large - small) / (args.large - args.small)
    print(
        f"{args.code}: instructions {small:,} ({args.small} requests), {large:,} "
        f"({args.large} requests); per customer 360 request"
        f"{' through the WSGI handler' if args.wsgi else ''}: {per_request:,.0f}"
    )
    return 0


if __name__ == "__main__":
    # Run as a script, this directory comes first on sys.path, and bench/graphql.py would
    # shadow the graphql package.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)
    sys.exit(main())
