"""A worker holding more than its share of requests closes a kept-alive connection
(``core/balance.py`` through ``app/handler.py``, started by ``saleor-crm serve``)."""

from __future__ import annotations

import glob
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import override_settings

from saleor_crm_plugin.app.handler import AppWSGIHandler
from saleor_crm_plugin.core.balance import SLOT_BYTES, create
from tests.app.test_serve import STAFF_QUERY, _post, saleor_holding_staff, serving
from tests.app.test_wsgi_handler import environ


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A balance file for two workers whose other worker is alive and idle."""
    path = tmp_path / "balance"
    create(str(path), 2)
    with path.open("r+b") as file:
        file.write(struct.pack("qq", os.getppid(), 0))
    return path


def _handler(shared: Path, response: Any = None) -> AppWSGIHandler:
    # These tests drive the requests-in-flight count; counting connections is tested in
    # tests/core/test_balance.py.
    with override_settings(
        CRM_CONNECTION_BALANCE_FILE=str(shared),
        CRM_CONNECTION_BALANCE_INTERVAL=0,
        CRM_CONNECTION_BALANCE_COUNT="requests",
    ):
        handler = AppWSGIHandler()
    if response is not None:
        handler.get_response = lambda request: response  # type: ignore[method-assign]
    return handler


def _call(handler: AppWSGIHandler, **overrides: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    seen: list[tuple[str, list[tuple[str, str]]]] = []
    env = {**environ(method="GET", path="/healthz"), **overrides}
    result = handler(env, lambda status, headers, *exc: seen.append((status, list(headers))))
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    ((status, headers),) = seen
    return status, headers, body


def test_a_balanced_worker_keeps_its_connections(db, shared: Path) -> None:
    handler = _handler(shared)
    plain = _call(AppWSGIHandler())
    assert _call(handler) == plain  # 1 request in flight against 0: within its share
    assert not any(name.lower() == "connection" for name, _ in plain[1])


def test_a_busier_worker_answers_with_connection_close(db, shared: Path) -> None:
    handler = _handler(shared)
    assert handler._balance is not None
    plain = _call(AppWSGIHandler())
    handler._balance.enter()  # another request of this worker in flight: 2 against 0
    try:
        status, headers, body = _call(handler)
    finally:
        handler._balance.leave()
    assert (status, headers[:-1], body) == plain  # Django's answer, one header added
    assert headers[-1] == ("Connection", "close")
    assert struct.unpack("qq", shared.read_bytes()[SLOT_BYTES : 2 * SLOT_BYTES]) == (
        os.getpid(),
        0,
    )


@pytest.mark.parametrize("protocol", ["HTTP/2", "HTTP/1.0"])
def test_never_on_other_protocols(db, shared: Path, protocol: str) -> None:
    handler = _handler(shared)
    assert handler._balance is not None
    handler._balance.enter()
    try:
        _, headers, _ = _call(handler, SERVER_PROTOCOL=protocol)
    finally:
        handler._balance.leave()
    assert not any(name.lower() == "connection" for name, _ in headers)


def test_never_on_a_streamed_answer(db, shared: Path) -> None:
    handler = _handler(shared, StreamingHttpResponse(iter([b"a", b"b"])))
    assert handler._balance is not None
    handler._balance.enter()
    try:
        _, headers, body = _call(handler)
    finally:
        handler._balance.leave()
    assert body == b"ab"
    assert not any(name.lower() == "connection" for name, _ in headers)


def test_an_answer_that_names_its_connection_keeps_it(db, shared: Path) -> None:
    response = HttpResponse(b"x")
    response["Connection"] = "keep-alive"
    handler = _handler(shared, response)
    assert handler._balance is not None
    handler._balance.enter()
    try:
        _, headers, _ = _call(handler)
    finally:
        handler._balance.leave()
    assert [v for name, v in headers if name.lower() == "connection"] == ["keep-alive"]


def test_the_count_comes_back_when_the_view_raises(db, shared: Path, monkeypatch) -> None:
    handler = _handler(shared)

    def broken(self: Any, environ: Any, start_response: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(AppWSGIHandler, "_gated_call", broken)  # inside the balanced call
    with pytest.raises(RuntimeError):
        _call(handler)
    assert struct.unpack("qq", shared.read_bytes()[SLOT_BYTES : 2 * SLOT_BYTES]) == (
        os.getpid(),
        0,
    )


def test_no_balance_without_the_file(db) -> None:
    assert AppWSGIHandler()._balance is None


def test_a_worker_without_a_slot_serves_unbalanced(db, shared: Path, caplog) -> None:
    for index in range(4):
        with shared.open("r+b") as file:
            file.seek(index * SLOT_BYTES)
            file.write(struct.pack("qq", os.getppid(), 0))
    handler = _handler(shared)
    assert handler._balance is None
    assert _call(handler) == _call(AppWSGIHandler())
    assert "Serving without connection balance" in caplog.text


def _exchange(sock: socket.socket, port: int) -> bytes:
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    answer = b""
    while b'{"status": "ok"}' not in answer:
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    return answer


def test_serve_closes_a_connection_of_its_busier_worker(transactional_db, tmp_path: Path) -> None:
    """Granian with two workers, both in the file ``serve`` made: a staff request waits on
    Saleor in one of them, so that worker holds a request more than the other; a request
    reaching it on another connection is answered with ``Connection: close`` and the server
    closes that socket, while one reaching the idle worker keeps its connection. Once the
    staff request is answered the server is balanced and closes nothing. The file is gone
    once ``serve`` stops."""
    before = set(glob.glob("/dev/shm/saleor-crm-balance-*"))
    os.environ["CRM_CONNECTION_BALANCE_INTERVAL"] = "0"
    os.environ["CRM_CONNECTION_BALANCE_COUNT"] = "requests"  # the waiting request is the load
    try:
        with (
            saleor_holding_staff(20) as held,
            serving("granian", tmp_path, "--workers", "2", "--threads", "2", "--balance") as base,
        ):
            port = int(base.rsplit(":", 1)[1])
            path = _file_of_our_workers(before, port)
            staff = threading.Thread(
                target=_post, args=(f"{base}/graphql/", STAFF_QUERY, held.headers)
            )
            staff.start()
            assert held.asked.wait(10), "the staff request never asked Saleor"
            answers = []
            for _ in range(40):  # each new connection goes to either worker
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    closing = b"\r\nconnection: close\r\n" in _exchange(sock, port).lower()
                    sock.settimeout(5)
                    if closing:
                        assert sock.recv(1) == b""  # the server closed it
                    else:
                        assert b"connection: close" not in _exchange(sock, port).lower()
                    answers.append(closing)
            assert True in answers and False in answers, answers
            held.release.set()
            staff.join(15)
            for _ in range(10):
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    assert b"connection: close" not in _exchange(sock, port).lower()
    finally:
        del os.environ["CRM_CONNECTION_BALANCE_INTERVAL"]
        del os.environ["CRM_CONNECTION_BALANCE_COUNT"]
    assert not os.path.exists(path)


def _file_of_our_workers(before: set[str], port: int) -> str:
    """The balance file both workers of the server this test started have claimed a slot in
    (other servers' files may come and go meanwhile), once both listen."""
    deadline = time.monotonic() + 30
    while True:
        paths = [
            path
            for path in set(glob.glob("/dev/shm/saleor-crm-balance-*")) - before
            if _our_workers(path) == 2
        ]
        if paths and _listeners(port) == 2:  # a worker claims its slot, then listens
            (path,) = paths
            return path
        assert time.monotonic() < deadline
        with socket.create_connection(("127.0.0.1", port)) as sock:
            _exchange(sock, port)
        time.sleep(0.05)


def _read(path: str) -> list[tuple[int, int]]:
    data = Path(path).read_bytes()
    values = struct.unpack(f"{len(data) // 8}q", data)
    return list(zip(values[0::2], values[1::2], strict=True))


def _our_workers(path: str) -> int:
    """How many slots of ``path`` belong to workers of the server this test started."""
    ours = 0
    for pid, _ in _read(path):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
            grandparent = Path(f"/proc/{parent}/stat").read_text().rpartition(")")[2].split()[1]
        except (OSError, FileNotFoundError):
            continue
        ours += pid != 0 and int(grandparent) == os.getpid()
    return ours


def _listeners(port: int) -> int:
    """Listening sockets on ``port`` (granian: one per worker, ``SO_REUSEPORT``)."""
    listening = f":{port:04X} 00000000:0000 0A"
    return sum(listening in line for line in Path("/proc/net/tcp").read_text().splitlines())
