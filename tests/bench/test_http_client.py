"""The benchmarks' load generator (``bench/_http.py``) against a tiny scripted HTTP server.

``Driver`` (one thread, epoll, every client's connections) replaced a thread per client with a
``Sender``; what the benchmarks measure must not move with it. So the two are run on the same
generated requests and must read the same answers (statuses, bodies framed by Content-Length or
by the close, answers split anywhere, ``Connection: close``, kept-alive connections the server
drops while idle), open as many connections, and have every request seen by the server exactly
once. Then what only the driver does: how many requests it keeps in flight, its schedule,
``stop_at``, the latency span (from before the first byte sent to after the last byte
answered), its timeout, and the ``ss`` watcher that runs only for new connections.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bench import _http
from bench._http import Answer, Client, Driver, Sender, StaleConnection, connection_owners

STATUSES = (200, 200, 200, 201, 204, 400, 404, 409, 500, 503)


@dataclass(frozen=True)
class Spec:
    """How the server answers one request (drawn from the request's id, so every client
    implementation gets the same answer to the same request)."""

    status: int
    body: bytes
    framing: str  # "length": Content-Length; "close": the body ends where the connection does
    close_header: bool  # ``Connection: close`` in a Content-Length answer, then closed
    idle_close: bool  # closed after a Content-Length answer without saying so
    delay: float
    cuts: tuple[int, ...]  # where the answer's bytes are split into separate writes


def spec_for(rid: int) -> Spec:
    rng = random.Random(rid)
    size = rng.choice((0, 1, rng.randrange(2, 300), rng.randrange(300, 5000), 70_000, 200_000))
    body = (f"{rid}:".encode() * (size // 2 + 2))[:size]
    framing = "close" if rng.random() < 0.2 else "length"
    close_header = framing == "length" and rng.random() < 0.15
    idle_close = framing == "length" and not close_header and rng.random() < 0.15
    status = rng.choice(STATUSES)
    head_guess = 60 + size
    cuts = tuple(sorted(rng.randrange(1, head_guess) for _ in range(rng.randrange(0, 4))))
    return Spec(status, body, framing, close_header, idle_close, rng.random() * 0.003, cuts)


class ScriptedServer:
    """A threaded raw-socket HTTP/1.1 server answering each request as ``spec_for`` its id
    (the request body starts with ``id=<n>;``) says; it records when each request's first
    byte arrived and its answer's last write started, and how many were in progress at
    once."""

    def __init__(self, spec: Callable[[int], Spec] = spec_for, hold: float = 0.0) -> None:
        self.spec = spec
        self.hold = hold  # extra seconds every answer waits (to see concurrency)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.listener.getsockname()[1]
        self.seen: Counter[int] = Counter()
        self.first_byte: dict[int, float] = {}
        self.answered: dict[int, float] = {}
        self.accepted = 0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                first = 0.0
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(1 << 20)
                    if not data:
                        return
                    if not buffer:
                        first = time.perf_counter()
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
                while len(rest) < length:
                    data = conn.recv(1 << 20)
                    if not data:
                        return
                    rest += data
                body, buffer = rest[:length], rest[length:]
                # ``id=<n>;...``; any other body (a GraphQL query) is request 0.
                rid = int(body[3 : body.index(b";")]) if body.startswith(b"id=") else 0
                with self.lock:
                    self.seen[rid] += 1
                    self.first_byte[rid] = first
                    self.active += 1
                    self.max_active = max(self.max_active, self.active)
                spec = self.spec(rid)
                if not spec.status:
                    return  # closed without an answer
                time.sleep(spec.delay + self.hold)
                closing = (
                    spec.framing == "close"
                    or spec.close_header
                    or spec.idle_close
                    or b"connection: close" in head.lower()
                )
                answer = self._answer(spec)
                with self.lock:
                    self.active -= 1
                start = 0
                for cut in (*spec.cuts, len(answer)):
                    if cut > start:
                        if cut >= len(answer):  # the last write starts
                            with self.lock:
                                self.answered[rid] = time.perf_counter()
                        conn.sendall(answer[start:cut])
                        start = cut
                        if cut < len(answer):
                            time.sleep(0.001)
                if closing:
                    return
        except OSError:
            return
        finally:
            conn.close()

    @staticmethod
    def _answer(spec: Spec) -> bytes:
        lines = [f"HTTP/1.1 {spec.status} Whatever", "Content-Type: application/json"]
        if spec.framing == "length":
            lines.append(f"content-length: {len(spec.body)}")
        if spec.close_header:
            lines.append("Connection:  close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + spec.body

    def close(self) -> None:
        self.stopped = True
        self.listener.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


def request_for(rid: int, keep_alive: bool, padding: int = 0) -> bytes:
    body = f"id={rid};".encode() + b"x" * padding
    return (
        f"POST /api HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode() + body


def generated(seed: int, clients: int, per_client: int) -> list[list[tuple[int, int]]]:
    """``(request id, padding)`` per client; a few requests are megabytes (a partial send)."""
    rng = random.Random(seed)
    return [
        [
            (seed * 100_000 + c * 1000 + k, rng.choice((0, 10, 3000, 3_000_000 * (k % 9 == 4))))
            for k in range(per_client)
        ]
        for c in range(clients)
    ]


def by_threads(
    port: int, plan: list[list[tuple[int, int]]], keep_alive: bool
) -> tuple[dict[int, tuple[int, bytes]], int]:
    """The old way: a thread per client, each with its ``Sender``."""
    answers: dict[int, tuple[int, bytes]] = {}
    connects = [0]
    lock = threading.Lock()

    def run(items: list[tuple[int, int]]) -> None:
        sender = Sender(keep_alive, port)
        for rid, padding in items:
            status, _, body = sender.post(request_for(rid, keep_alive, padding))
            with lock:
                answers[rid] = (status, body)
        sender.close()
        with lock:
            connects[0] += sender.connects

    threads = [threading.Thread(target=run, args=(items,)) for items in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, connects[0]


def by_driver(
    port: int, plan: list[list[tuple[int, int]]], keep_alive: bool
) -> tuple[dict[int, tuple[int, bytes]], int]:
    answers: dict[int, tuple[int, bytes]] = {}

    def client(items: list[tuple[int, int]]) -> Client:
        for rid, padding in items:
            answer = yield request_for(rid, keep_alive, padding), 0.0
            answers[rid] = (answer.status, answer.body)

    driver = Driver(port, keep_alive=keep_alive, timeout=10)
    driver.run([client(items) for items in plan])
    return answers, driver.connects


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_driver_reads_what_a_thread_per_client_read(seed: int, keep_alive: bool) -> None:
    plan = generated(seed, clients=6, per_client=25)
    expected = {
        rid: (spec_for(rid).status, spec_for(rid).body) for items in plan for rid, _ in items
    }
    results = {}
    for name, way in (("threads", by_threads), ("driver", by_driver)):
        srv = ScriptedServer()
        try:
            answers, connects = way(srv.port, plan, keep_alive)
        finally:
            srv.close()
        assert answers == expected, name
        # Every request reached the server once: a resend only follows a kept connection the
        # server had closed without reading the request.
        assert srv.seen == Counter(expected.keys()), name
        assert connects == srv.accepted, name
        results[name] = connects
    assert results["driver"] == results["threads"]
    if not keep_alive:
        assert results["driver"] == len(expected)
    else:
        reopened = sum(
            1
            for items in plan
            for rid, _ in items[:-1]
            if spec_for(rid).framing == "close" or spec_for(rid).close_header
        )
        # At least the connections the answers closed, and fewer than one per request.
        assert reopened + len(plan) <= results["driver"] < len(expected)


def test_keeps_one_request_in_flight_per_client() -> None:
    srv = ScriptedServer(lambda rid: Spec(200, b"ok", "length", False, False, 0.0, ()), hold=0.05)
    try:
        answers, connects = by_driver(srv.port, generated(9, clients=8, per_client=3), False)
    finally:
        srv.close()
    assert len(answers) == 24 and connects == 24
    assert srv.max_active == 8


def test_paced_requests_wait_for_their_time_and_stop_at_stops() -> None:
    srv = ScriptedServer(lambda rid: Spec(200, b"ok", "length", False, False, 0.0, ()))
    start = time.perf_counter() + 0.05
    sent: list[tuple[float, Answer]] = []
    closed: list[int] = []

    def client(index: int) -> Client:
        try:
            for k in range(1000):
                due = start + (2 * k + index) * 0.01
                answer = yield request_for(index * 1000 + k, True), due
                sent.append((due, answer))
        finally:
            closed.append(index)

    stop_at = start + 0.3
    driver = Driver(srv.port, keep_alive=True)
    try:
        driver.run([client(0), client(1)], stop_at=stop_at)
    finally:
        srv.close()
    assert 10 <= len(sent) <= 30
    assert sorted(closed) == [0, 1]
    for due, answer in sent:
        assert due <= answer.started < due + 0.25
        assert answer.started < stop_at
    assert driver.connects == 2


def test_latency_spans_first_byte_sent_to_last_byte_answered() -> None:
    delay = 0.03
    srv = ScriptedServer(
        lambda rid: Spec(200, b"x" * 100_000, "length", False, False, delay, (5, 50, 5000))
    )
    results: list[tuple[int, Answer]] = []

    def client(base: int) -> Client:
        for k in range(4):
            answer = yield request_for(base + k, False), 0.0
            results.append((base + k, answer))

    try:
        Driver(srv.port, keep_alive=False).run([client(0), client(100)])
    finally:
        srv.close()
    assert len(results) == 8
    for rid, answer in results:
        assert answer.started <= srv.first_byte[rid]
        assert answer.started + answer.ms / 1000 >= srv.answered[rid]
        assert delay * 1000 <= answer.ms < delay * 1000 + 200


def test_stale_kept_connection_is_resent_once_on_a_new_one(server: ScriptedServer) -> None:
    server.spec = lambda rid: Spec(200, str(rid).encode(), "length", False, True, 0.0, ())
    bodies = []

    def client() -> Client:
        for rid in range(5):
            answer = yield request_for(rid, True), 0.0
            bodies.append(answer.body)

    driver = Driver(server.port, keep_alive=True)
    driver.run([client()])
    assert bodies == [b"0", b"1", b"2", b"3", b"4"]
    assert driver.connects == 5 and server.seen == Counter(range(5))


def test_a_new_connection_closed_unanswered_raises(server: ScriptedServer) -> None:
    server.spec = lambda rid: Spec(0, b"", "length", False, False, 0.0, ())

    def client() -> Client:
        yield request_for(1, False), 0.0

    with pytest.raises((StaleConnection, ConnectionError)):
        Driver(server.port, keep_alive=False).run([client()])


def test_no_answer_times_out(server: ScriptedServer) -> None:
    server.hold = 2.0
    server.spec = lambda rid: Spec(200, b"", "length", False, False, 0.0, ())

    def client() -> Client:
        yield request_for(1, False), 0.0

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        Driver(server.port, keep_alive=False, timeout=0.3).run([client()])
    assert time.perf_counter() - started < 1.5


def test_refused_connection_raises() -> None:
    port = _http.free_port()

    def client() -> Client:
        yield request_for(1, False), 0.0

    with pytest.raises(ConnectionRefusedError):
        Driver(port, keep_alive=False).run([client()])


def test_local_ports_are_tracked_per_connection(server: ScriptedServer) -> None:
    server.spec = lambda rid: Spec(200, b"", "length", rid % 2 == 1, False, 0.0, ())
    ports = []

    def client() -> Client:
        for rid in range(4):
            answer = yield request_for(rid, True), 0.0
            ports.append(answer.local_port)

    driver = Driver(server.port, keep_alive=True, track_ports=True)
    driver.run([client()])
    # Answers 1 and 3 close their connection: 0 and 1 share one, 2 and 3 the next.
    assert driver.opened_ports == [ports[0], ports[2]]
    assert ports[0] == ports[1] and ports[2] == ports[3] and ports[0] != ports[2]


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss")
def test_owner_watcher_runs_ss_only_for_new_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = [0]
    real_run = subprocess.run

    def counting_run(*args: object, **kwargs: object) -> subprocess.CompletedProcess:
        runs[0] += 1
        return real_run(*args, **kwargs)

    monkeypatch.setattr(_http.subprocess, "run", counting_run)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    opened: list[int] = []
    owners: dict[int, int] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=connection_owners, args=(port, owners, stop, opened))
    watcher.start()
    client = accepted = listener
    try:
        time.sleep(0.6)
        assert runs[0] == 0  # nothing opened: no ss
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        local_port = client.getsockname()[1]
        opened.append(local_port)
        deadline = time.monotonic() + 3
        while local_port not in owners and time.monotonic() < deadline:
            time.sleep(0.05)
        assert owners[local_port] == os.getpid()
        after_found = runs[0]
        time.sleep(0.6)
        assert runs[0] == after_found  # resolved: no more ss
        opened.append(12345)  # never established: given up after three runs
        time.sleep(1.2)
        assert runs[0] == after_found + 3
    finally:
        stop.set()
        watcher.join()
        for sock in (client, accepted, listener):
            sock.close()


@pytest.mark.parametrize("rate", [0.0, 40.0])
def test_graphql_load_closed_loop_and_paced(server: ScriptedServer, rate: float) -> None:
    """``bench.graphql.load`` on the driver: every request answered, latencies kept after the
    warm-up only, each attributed to the process holding its connection (this one, here)."""
    from bench import graphql

    server.spec = lambda rid: Spec(200, b'{"data": {"me": null}}', "length", False, False, 0, ())
    measured = graphql.load(f"http://127.0.0.1:{server.port}/graphql/", ["a", "b"], 3, 1.0, rate)
    assert measured.reconnects == 0 and server.accepted == 3
    assert measured.latencies and all(ms > 0 for ms in measured.latencies)
    # Requests during the 2 s warm-up were sent but not kept.
    assert sum(server.seen.values()) > len(measured.latencies)
    if rate:
        assert 25 <= len(measured.latencies) <= 45  # 40 req/s in all for 1 s
    if shutil.which("ss"):
        assert set(measured.per_worker) == {os.getpid()}
    assert sum(len(v) for v in measured.per_worker.values()) == len(measured.latencies)
