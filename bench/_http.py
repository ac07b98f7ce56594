"""A load generator's HTTP/1.1 client and CPU accounting, shared by the benchmarks.

The load generator runs on the same two cores as the server it measures, so it must cost as
little as possible: requests are built before timing and sent over raw sockets (about a fifth
of what ``http.client`` costs per request), and each benchmark reports the server's CPU per
request read from ``/proc`` next to the client's own.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

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
    pass


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


def connection_owners(port: int, owners: dict[int, int], stop: threading.Event) -> None:
    """Until ``stop``: which server process holds each established connection to ``port``
    (client port -> pid), read from ``ss`` four times a second (a connection the server
    closes sooner may be missed)."""
    pattern = re.compile(r"\S+:(\d+)\s+\S+:(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)")
    while not stop.is_set():
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
