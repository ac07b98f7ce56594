"""A load generator's HTTP/1.1 client and CPU accounting, shared by the benchmarks.

The load generator runs on the same two cores as the server it measures, so it must cost as
little as possible: requests are built before timing and sent over raw sockets (about a fifth
of what ``http.client`` costs per request), and each benchmark reports the server's CPU per
request read from ``/proc`` next to the client's own.

``Driver`` runs many clients' connections from one thread with non-blocking sockets and
``epoll``: with a thread per client (``Sender``), every answer woke a thread that first had to
take the GIL from another (futex hand-offs, context switches) and every socket call polled
first (a socket with a timeout does), all on the cores being measured. ``Sender`` stays for
one-off requests (is the server up?) and the benchmarks that still run a thread per client.
"""

from __future__ import annotations

import errno
import heapq
import math
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
_CONNECTION_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.I)


class Sender:
    """One client connection speaking just enough HTTP/1.1 for these requests."""

    def __init__(self, keep_alive: bool, port: int, host: str = "127.0.0.1") -> None:
        self.keep_alive = keep_alive
        self.host = host
        self.port = port
        self.sock: socket.socket | None = None
        self.connects = 0  # connections opened (a server's ``Connection: close`` makes one)
        self.local_port = 0  # this side's port of the newest connection: who served it (``ss``)

    def post(self, request: bytes) -> tuple[int, float, bytes]:
        """Status, milliseconds from the first byte sent (connecting included) to the last
        byte of the answer, and the answer's body."""
        started = time.perf_counter()
        reused = self.sock is not None
        try:
            status, body, close = self._exchange(request)
        except StaleConnection:
            if not reused:
                raise
            # The server closed an idle kept-alive connection before reading anything: the
            # request was not seen, so send it once more on a new connection.
            self.close()
            started = time.perf_counter()
            status, body, close = self._exchange(request)
        elapsed = (time.perf_counter() - started) * 1000
        if close or not self.keep_alive:
            self.close()
        return status, elapsed, body

    def _exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connects += 1
            self.local_port = self.sock.getsockname()[1]
        sock = self.sock
        try:
            sock.sendall(request)
            buffer = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise StaleConnection from exc
        if not buffer:
            raise StaleConnection
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside the response head")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        match = _CONTENT_LENGTH.search(head)
        length = int(match.group(1)) if match else None
        while length is None or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                if length is None:
                    break
                raise ConnectionError("connection closed inside the response body")
            body += chunk
        return int(head[9:12]), body, _CONNECTION_CLOSE.search(head) is not None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class StaleConnection(Exception):
    """The server closed the connection before answering (nothing was read)."""


class Answer(NamedTuple):
    """One request's outcome, as a ``Driver`` hands it back to the client that sent it."""

    status: int
    #: ``perf_counter()`` when the request was about to be sent (before its connection was
    #: opened, if it needed one): what a client compares with its warm-up and stop times.
    started: float
    #: Milliseconds from the first byte sent (connecting included) to the last byte of the
    #: answer; a request sent again after a stale kept-alive connection counts from the resend.
    ms: float
    body: bytes
    #: This side's port of the connection that carried it (0 unless ``track_ports``).
    local_port: int


#: A client: a generator that yields ``(request bytes, not before)`` (a ``perf_counter()``
#: time, 0 for at once) and is sent each request's ``Answer``; it returns when it is done.
Client = Generator[tuple[bytes, float], Answer, None]

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT


class _Slot:
    """One client's connection and the request it has in flight (``request`` None: idle)."""

    __slots__ = (
        "buffer",
        "client",
        "fd",
        "first",
        "head_end",
        "length",
        "local_port",
        "mask",
        "request",
        "reused",
        "sent",
        "sock",
        "started",
    )

    def __init__(self, client: Client) -> None:
        self.client = client
        self.sock: socket.socket | None = None
        self.fd = -1
        self.mask = 0  # events the socket is registered for (0: not registered)
        self.local_port = 0
        self.request: bytes | None = None
        self.sent = 0
        self.started = 0.0
        self.first = 0.0
        self.reused = False
        self.buffer = b""
        self.head_end = -1  # where the answer's head ends in ``buffer`` (-1: not seen yet)
        self.length: int | None = None  # the answer's Content-Length (None: read to close)


class Driver:
    """Many HTTP/1.1 clients driven by one thread over non-blocking sockets and ``epoll``.

    Each client is a generator (``Client``) that sends its requests one after another, as a
    thread per client with a ``Sender`` did, so a run keeps as many requests in flight as it
    has clients. ``keep_alive`` False opens a new connection per request (as Saleor's webhook
    sender does) and closes it after the answer; True keeps each client's connection, opens a
    new one after a ``Connection: close`` answer, and sends a request once more on a new
    connection when the server closed the kept one before reading it (the request was not
    seen). Answers are read as far as their ``Content-Length`` (without one, to the close);
    nothing else of the head is parsed but the status and, when kept alive, the close.
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        keep_alive: bool,
        track_ports: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.keep_alive = keep_alive
        self.track_ports = track_ports
        # Seconds without any socket event, requests in flight, before giving up.
        self.timeout = timeout
        self.connects = 0  # connections opened (a server's ``Connection: close`` makes one)
        #: Local ports of the connections opened, in order (only with ``track_ports``), so a
        #: watcher can look up which server process holds each (``connection_owners``).
        self.opened_ports: list[int] = []
        self._epoll: Any = None
        self._by_fd: dict[int, _Slot] = {}
        self._timers: list[tuple[float, int, _Slot, bytes]] = []
        self._sequence = 0
        self._in_flight = 0
        self._stop_at = math.inf

    def run(self, clients: Iterable[Client], stop_at: float = math.inf) -> None:
        """Drive ``clients`` until each has returned, or has a request due at or after
        ``stop_at`` (a ``perf_counter()`` time: that request is not sent, the client closed)."""
        self._stop_at = stop_at
        self._epoll = epoll = select.epoll()
        slots: list[_Slot] = []
        try:
            for client in clients:
                slot = _Slot(client)
                slots.append(slot)
                try:
                    request, not_before = next(client)
                except StopIteration:
                    continue
                self._schedule(slot, request, not_before)
            timers = self._timers
            by_fd = self._by_fd
            # At most one connection per client: without a bound, every poll allocates room
            # for 1,023 events (12 KB through malloc).
            most = max(len(slots), 1)
            while self._in_flight or timers:
                wait = self.timeout
                if timers:
                    now = time.perf_counter()
                    while timers and timers[0][0] <= now:
                        _, _, slot, request = heapq.heappop(timers)
                        self._begin(slot, request)
                    if timers:
                        wait = min(wait, timers[0][0] - time.perf_counter())
                        if not self._in_flight:
                            if wait > 0:
                                time.sleep(wait)  # nothing to read meanwhile: a precise wait
                            continue
                    if not self._in_flight:
                        continue  # the due clients were past ``stop_at``
                events = epoll.poll(max(wait, 0.0), most)
                if not events:
                    if wait >= self.timeout:  # a whole timeout without a socket event
                        raise TimeoutError(f"no answer for {self.timeout:g} s")
                    continue
                for fd, _ in events:
                    slot = by_fd[fd]
                    request = slot.request
                    if request is None:
                        # An idle kept-alive connection the server closed (or wrote to,
                        # unasked): drop it, the client's next request opens a new one.
                        self._disconnect(slot)
                    elif slot.sent < len(request):
                        self._send_more(slot)
                    else:
                        self._receive(slot)
        finally:
            for slot in slots:
                self._disconnect(slot)
            epoll.close()
            self._epoll = None
            self._by_fd.clear()
            self._timers.clear()
            self._in_flight = 0

    def _schedule(self, slot: _Slot, request: bytes, not_before: float) -> None:
        if not_before <= 0 or not_before <= time.perf_counter():
            self._begin(slot, request)
        else:
            self._sequence += 1
            heapq.heappush(self._timers, (not_before, self._sequence, slot, request))

    def _begin(self, slot: _Slot, request: bytes) -> None:
        """Start a request: time it from here, before its connection if it needs one, and send
        as much as the socket takes (all of it, but for a connection still under way or a
        request larger than the send buffer)."""
        started = time.perf_counter()
        if started >= self._stop_at:
            slot.client.close()
            self._disconnect(slot)
            return
        slot.request = request
        slot.started = slot.first = started
        slot.head_end = -1
        slot.length = None
        self._in_flight += 1
        # The hot path (a kept connection, or a new one whose handshake loopback finished
        # inside connect(), and a request the send buffer takes whole) is inlined: it runs once
        # per request, on the cores being measured.
        sock = slot.sock
        slot.reused = sock is not None
        if sock is None:
            sock = self._connect(slot)
        try:
            sent = sock.send(request)
        except BlockingIOError:
            sent = 0  # connecting: EPOLLOUT says when to go on
        except (BrokenPipeError, ConnectionResetError):
            if not slot.reused:
                raise
            self._resend(slot)
            return
        slot.sent = sent
        mask = _IN if sent == len(request) else _OUT
        if slot.mask != mask:
            self._watch(slot, mask)

    def _connect(self, slot: _Slot) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # On loopback the handshake completes inside connect(); the send that follows then
        # goes out at once, and only a connection still under way waits for EPOLLOUT.
        code = sock.connect_ex((self.host, self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise ConnectionRefusedError(code, os.strerror(code))
        slot.sock = sock
        slot.fd = sock.fileno()
        slot.mask = 0
        self._by_fd[slot.fd] = slot
        self.connects += 1
        if self.track_ports:
            slot.local_port = sock.getsockname()[1]
            self.opened_ports.append(slot.local_port)
        return sock

    def _send_more(self, slot: _Slot) -> None:
        """The rest of a request the socket could not take at once."""
        request = slot.request
        assert request is not None and slot.sock is not None
        try:
            slot.sent += slot.sock.send(request[slot.sent :])
        except BlockingIOError:
            return
        except (BrokenPipeError, ConnectionResetError):
            if not slot.reused:
                raise
            self._resend(slot)
            return
        if slot.sent == len(request):
            self._watch(slot, _IN)

    def _watch(self, slot: _Slot, mask: int) -> None:
        if slot.mask:
            self._epoll.modify(slot.fd, mask)
        else:
            self._epoll.register(slot.fd, mask)
        slot.mask = mask

    def _resend(self, slot: _Slot) -> None:
        """The server closed a kept-alive connection before reading the request: it was not
        seen, so send it once more on a new connection, timed from then."""
        request = slot.request
        assert request is not None
        first = slot.first
        self._disconnect(slot)
        self._in_flight -= 1
        stop_at, self._stop_at = self._stop_at, math.inf  # a request started is seen through
        try:
            self._begin(slot, request)
        finally:
            self._stop_at = stop_at
        slot.first = first

    def _receive(self, slot: _Slot) -> None:
        """Read what arrived; once the answer is whole, hand it to its client and start the
        client's next request."""
        assert slot.sock is not None
        try:
            data = slot.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            if slot.buffer or not slot.reused:
                raise
            self._resend(slot)
            return
        buffer = slot.buffer
        if data:
            if buffer:
                buffer += data
            else:
                buffer = data
            head_end = slot.head_end
            if head_end < 0:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    slot.buffer = buffer
                    return
                slot.head_end = head_end
                match = _CONTENT_LENGTH.search(buffer, 0, head_end)
                slot.length = int(match.group(1)) if match else None
            length = slot.length
            if length is None or len(buffer) - head_end - 4 < length:
                slot.buffer = buffer
                return
            closed = False
        elif not buffer:
            if not slot.reused:
                raise StaleConnection
            self._resend(slot)
            return
        elif slot.head_end < 0:
            raise ConnectionError("connection closed inside the response head")
        elif slot.length is not None:
            raise ConnectionError("connection closed inside the response body")
        else:
            head_end = slot.head_end
            closed = True
        slot.buffer = b""
        answer = _new_answer(
            Answer,
            (
                int(buffer[9:12]),
                slot.first,
                # Read after the last recv: bytes may arrive between a poll and the recv.
                (time.perf_counter() - slot.started) * 1000,
                buffer[head_end + 4 :],
                slot.local_port,
            ),
        )
        if (
            closed
            or not self.keep_alive
            or _CONNECTION_CLOSE.search(buffer, 0, head_end) is not None
        ):
            self._disconnect(slot)
        slot.request = None
        self._in_flight -= 1
        try:
            request, not_before = slot.client.send(answer)
        except StopIteration:
            self._disconnect(slot)
            return
        if not_before <= 0:
            self._begin(slot, request)
        else:
            self._schedule(slot, request, not_before)

    def _disconnect(self, slot: _Slot) -> None:
        if slot.sock is not None:
            # Closing the socket also takes it out of the epoll set.
            del self._by_fd[slot.fd]
            slot.sock.close()
            slot.sock = None
            slot.fd = -1
            slot.mask = 0


#: ``Answer``s are built by ``tuple.__new__`` directly: a NamedTuple's own ``__new__`` is a
#: Python function, one more frame per request on the cores being measured.
_new_answer = tuple.__new__


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (a PostgreSQL backend, say), from ``/proc``."""
    return _parse_stat(Path(f"/proc/{pid}/stat").read_text())[2]


def process_tree_cpu(root: int) -> float:
    """User + system CPU seconds of a process and its live children (the server's master and
    workers), from ``/proc``."""
    return sum(cpu for pid, ppid, _, cpu in processes() if root in (pid, ppid))


def processes_cpu(name: str) -> float:
    """User + system CPU seconds of every live process whose command name is ``name``
    (``postgres``: the postmaster, its backends and background workers; ``redis-server``), from
    ``/proc``. A backend that exits between two readings takes its CPU with it, so read around
    work done on long-lived connections."""
    return sum(cpu for _, _, comm, cpu in processes() if comm == name)


def processes() -> Iterator[tuple[int, int, str, float]]:
    """``(pid, parent pid, command name, CPU seconds)`` of every live process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, comm, cpu = _parse_stat((entry / "stat").read_text())
        except OSError:
            continue
        yield int(entry.name), ppid, comm, cpu


def _parse_stat(text: str) -> tuple[int, str, float]:
    """``(parent pid, command name, user + system CPU seconds)`` of a ``/proc/<pid>/stat``
    (the name, in parentheses, may itself hold spaces and parentheses)."""
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    return int(fields[1]), head.partition("(")[2], (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def connection_owners(
    port: int,
    owners: dict[int, int],
    stop: threading.Event,
    opened: Sequence[int] | None = None,
) -> None:
    """Until ``stop``: which server process holds each established connection to ``port``
    (client port -> pid), read from ``ss`` (a connection the server closes sooner may be
    missed).

    Without ``opened``, ``ss`` runs four times a second. With it (the client's local ports in
    the order it opened them, as ``Driver.opened_ports`` lists them, read as it grows), ``ss``
    runs only while a port opened since has no owner yet, a quarter of a second apart and at
    most three times for one port: a connection stays with the process that accepted it, and
    each ``ss`` run reads every process's descriptors, ~18 ms of CPU on the cores being
    measured (four a second were ~4% of the two cores, counted nowhere)."""
    pattern = re.compile(r"\S+:(\d+)\s+\S+:(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)")
    unresolved: dict[int, int] = {}  # local port -> ``ss`` runs that have not found it yet
    seen = 0
    while not stop.is_set():
        if opened is not None:
            for local_port in opened[seen:]:
                unresolved[local_port] = 0  # (a port opened again may have a new owner)
                seen += 1
            if not unresolved:
                stop.wait(0.25)
                continue
        try:
            out = subprocess.run(
                ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                capture_output=True,
                text=True,
            ).stdout
        except OSError:  # no ``ss``: nothing to break down
            return
        for line in out.splitlines():
            match = pattern.search(line)
            if match and int(match.group(1)) == port:
                owners[int(match.group(2))] = int(match.group(3))
                unresolved.pop(int(match.group(2)), None)
        for local_port in list(unresolved):
            unresolved[local_port] += 1
            if unresolved[local_port] >= 3:
                del unresolved[local_port]
        stop.wait(0.25)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_app(
    server: str,
    port: int,
    workers: int,
    threads: int,
    env: Mapping[str, str],
    **popen: Any,
) -> subprocess.Popen:
    """The App as an operator runs it (``saleor-crm serve``), without the access log (the proxy
    in front of a real deployment logs requests, and a log line per request would be measured
    too); returns once ``/healthz`` answers."""
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "saleor-crm"),
            "serve",
            "--server",
            server,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--no-access-log",
        ],
        env={**os.environ, **env},
        **popen,
    )
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for _ in range(300):
        try:
            if Sender(False, port).post(request)[0] == 200:
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{server} did not start")
