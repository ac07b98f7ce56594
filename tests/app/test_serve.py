"""``saleor-crm serve`` behind each HTTP server it offers: a real process on a real port, the
test PostgreSQL database, a signed Saleor delivery stored and a forged one refused.

Granian hands the WSGI application a request built in Rust (headers, body stream), so what the
webhook signature check reads there must be exactly the bytes Saleor signed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.demo.signing import DemoSigner
from saleor_crm_plugin.events.models import InboxEvent
from tests.captures import CAPTURED_API_URL, load_capture

BODY = load_capture("ORDER_CREATED", "subscription").raw_body


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or "5432"
    return f"postgres://{user}@{host}:{port}/{settings['NAME']}"


@contextmanager
def serving(server: str, tmp_path: Path, *options: str) -> Iterator[str]:
    """The App served as an operator runs it, on the database this test sees (committed data:
    ``transactional_db``), without a broker (the sweep would pick the kick up)."""
    port = _free_port()
    executable = shutil.which("saleor-crm", path=str(Path(sys.executable).parent))
    assert executable, "the console script is installed with the package"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "SECRET_KEY": "serve-test",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "",
    }
    log = (tmp_path / "serve.log").open("w")
    if "--graceful-timeout" not in options:
        options = ("--graceful-timeout", "5", *options)
    process = subprocess.Popen(
        [executable, "serve", "--server", server, "--bind", f"127.0.0.1:{port}", *options],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # workers import Django; CI machines may be busy
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
                    assert answer.status == 200
                    break
            except OSError:  # refused while binding, or a timeout while the workers start
                if process.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    pytest.fail("the server did not answer within 60 s")
                time.sleep(0.1)
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        yield base
    finally:
        process.terminate()
        try:
            # The graceful timeout (5 s here) bounds the stop: a worker still alive then is
            # killed by the server itself, so a server still running after 30 s is a bug.
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # no server left behind for later tests
            process.wait(timeout=10)
            pytest.fail(f"the server did not stop within 30 s of SIGTERM: {_tail(tmp_path)}")
        finally:
            log.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "serve.log").read_text()[-2000:]


@pytest.fixture(params=["granian", "gunicorn"])
def server(request, transactional_db, tmp_path: Path) -> Iterator[str]:
    with serving(request.param, tmp_path) as base:
        yield base


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


STAFF_QUERY = json.dumps({"query": "{ crmCustomers(first: 1) { totalCount } }"}).encode()


@dataclass
class HeldStaffRequest:
    """A staff member's token of a registered fake Saleor that holds the permission query
    (``me { userPermissions }``) until ``release`` is set, at most ``hold`` seconds; ``asked``
    is set when the query arrives, ``waits`` records whether ``release`` came in time."""

    token: str
    asked: threading.Event
    release: threading.Event
    waits: list[bool]

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}


@contextmanager
def saleor_holding_staff(hold: float) -> Iterator[HeldStaffRequest]:
    from tests.conftest import FakeSaleor
    from tests.graphql.conftest import KID, Mint, jwks_of, user_gid

    saleor = FakeSaleor()
    saleor.jwks = jwks_of(KID)
    SaleorInstance.objects.create(saleor_api_url=saleor.api_url, jwks=jwks_of(KID))
    held = HeldStaffRequest(
        token=Mint(saleor.api_url)(user_gid(900), is_staff=True),
        asked=threading.Event(),
        release=threading.Event(),
        waits=[],
    )

    def permissions(query: str, variables: dict, headers: dict) -> dict:
        held.asked.set()
        held.waits.append(held.release.wait(hold))
        return {"me": {"id": user_gid(900), "userPermissions": []}}

    saleor.respond(permissions)
    try:
        yield held
    finally:
        held.release.set()
        saleor.close()


def test_signed_delivery_is_stored_a_forged_one_refused_and_graphql_answers(
    server: str, tmp_path: Path
):
    signer = DemoSigner.generate()
    SaleorInstance.objects.create(saleor_api_url=CAPTURED_API_URL, jwks=signer.jwks)
    headers = {
        "Content-Type": "application/json",
        "Saleor-Api-Url": CAPTURED_API_URL,
        "Saleor-Event": "order_created",
    }

    forged = BODY.replace(b'"', b"'", 1)
    status, answer = _post(
        f"{server}/api/webhooks/saleor", forged, {**headers, "Saleor-Signature": signer.sign(BODY)}
    )
    assert status == 401, answer
    assert answer["error"]["code"] == "SIGNATURE_INVALID"
    assert not InboxEvent.objects.exists()

    signed = {**headers, "Saleor-Signature": signer.sign(BODY)}
    assert _post(f"{server}/api/webhooks/saleor", BODY, signed) == (200, {"status": "accepted"})
    assert _post(f"{server}/api/webhooks/saleor", BODY, signed) == (200, {"status": "duplicate"})
    assert InboxEvent.objects.count() == 1

    # The GraphQL endpoint reads its JSON body through the same server.
    status, answer = _post(
        f"{server}/graphql/",
        json.dumps({"query": "{ __typename }"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert (status, answer) == (200, {"data": {"__typename": "Query"}})

    # One access-log line per request, written by the App in the server's worker process.
    log = _log_after(tmp_path, '"POST /graphql/ HTTP/1.1" 200')
    assert '"POST /api/webhooks/saleor HTTP/1.1" 401' in log
    assert log.count('"POST /api/webhooks/saleor HTTP/1.1" 200') == 2


def _log_after(tmp_path: Path, line: str) -> str:
    """The server's output once ``line`` is in it (the worker writes it as it answers)."""
    deadline = time.monotonic() + 10
    while True:
        log = (tmp_path / "serve.log").read_text()
        if line in log or time.monotonic() > deadline:
            assert line in log, log
            return log
        time.sleep(0.05)


@pytest.mark.parametrize("name", ["granian", "gunicorn"])
def test_no_access_log(name: str, transactional_db, tmp_path: Path) -> None:
    with serving(name, tmp_path, "--no-access-log") as base:
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as answer:
            assert answer.status == 200
        time.sleep(0.2)
    assert "/healthz" not in (tmp_path / "serve.log").read_text()


def test_a_request_waiting_on_saleor_does_not_hold_up_its_process(
    transactional_db, tmp_path: Path
) -> None:
    """One granian worker with two request threads and the request gate on (the default): a
    staff request waits on Saleor for the staff member's permissions, and Saleor answers only
    once a second request to the same process got its answer (or after 5 s, which fails)."""
    staff: list[tuple[int, dict]] = []
    with (
        saleor_holding_staff(5) as held,
        serving("granian", tmp_path, "--workers", "1", "--threads", "2") as base,
    ):
        request = threading.Thread(
            target=lambda: staff.append(_post(f"{base}/graphql/", STAFF_QUERY, held.headers))
        )
        request.start()
        assert held.asked.wait(10), "the staff request never asked Saleor"
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as answer:
            assert answer.status == 200
        held.release.set()
        request.join(15)
    assert held.waits == [True]
    status, body = staff[0]
    # No permission was granted, so the staff member is refused, after Saleor answered.
    assert status == 200 and body["errors"][0]["extensions"]["exception"]["code"] == (
        "PermissionDenied"
    ), body


@pytest.mark.parametrize("name", ["granian", "gunicorn"])
def test_a_stop_waits_for_requests_in_flight_no_longer_than_the_graceful_timeout(
    name: str, transactional_db, tmp_path: Path
) -> None:
    """SIGTERM while a request waits on Saleor: the server stops within ``--graceful-timeout``
    (2 s here) rather than after the request (held by Saleor up to 25 s), and never hangs
    (granian's workers could deadlock in their shutdown, emmett-framework/granian#875: only a
    kill timeout bounds that)."""
    with saleor_holding_staff(25) as held:
        with serving(name, tmp_path, "--workers", "1", "--graceful-timeout", "2") as base:
            request = threading.Thread(
                target=lambda: _post_ignoring_errors(f"{base}/graphql/", STAFF_QUERY, held.headers),
                daemon=True,
            )
            request.start()
            assert held.asked.wait(10), "the staff request never asked Saleor"
            stopping = time.monotonic()
        stopped_after = time.monotonic() - stopping
    # Without the timeout both servers waited for the request, i.e. for our client's 10 s
    # timeout on Saleor (measured 10.5 s).
    assert stopped_after < 8, stopped_after


def _post_ignoring_errors(url: str, body: bytes, headers: dict[str, str]) -> None:
    with contextlib.suppress(OSError, ValueError):  # the connection the stopping server drops
        _post(url, body, headers)
