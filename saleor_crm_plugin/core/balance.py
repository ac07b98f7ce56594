"""Kept-alive connections spread over the web server's worker processes (``saleor-crm serve``).

Granian's worker processes each listen on their own ``SO_REUSEPORT`` socket: the kernel gives a
new connection to one of them by a hash of its addresses, not by load, and a kept-alive
connection then stays with the worker that accepted it. 20 closed-loop clients split 10/10,
11/9, 14/6 between two workers from one run to the next, and since each worker runs one request
at a time (``core/gate.py``), a worker holding 14 connections answers each of them about 14/6
times slower than its neighbour: the run's p95 is the busier worker's latency
(docs/benchmarks.md, feat/bal).

So the workers share, through a small file that ``saleor-crm serve`` creates (its path in
``CRM_CONNECTION_BALANCE_FILE``), how many requests each has in its WSGI handler (running, or
waiting at the gate). A request that finds its worker holding at least one more than the mean of all
workers (with two workers: two more than the other) is answered with ``Connection: close``, at
most one such answer per worker per ``CRM_CONNECTION_BALANCE_INTERVAL``; the client opens a new
connection for its next request and the kernel places that one afresh. This is what gRPC's
``MAX_CONNECTION_AGE`` and Envoy's connection balancing do for the same reason, but driven by
load: a balanced server closes nothing. The App's handler applies it to HTTP/1.1 answers that
are fully buffered only (``app/handler.py``), never to HTTP/2 (one connection multiplexes many
clients' requests there, and ``Connection`` is not allowed).

The counts are what the handler sees: requests that granian still holds in its own queue because
all ``--threads`` of the worker are busy are invisible. Beyond that many connections per worker
both counts sit at ``--threads`` and the balance acts only when a worker's queue runs dry (it
holds fewer connections than the other); more threads would let it see every connection, but
cost CPU per request (docs/benchmarks.md, feat/bal).

Costs per request: a deque append and pop, two shared-memory writes, and, when its worker has
more than one request in flight, a read of the few slots.
A slot whose worker died keeps its last count until a new worker (granian respawns them) claims
it; the file has twice as many slots as workers, so a reload's new workers find free ones.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
from collections import deque
from time import monotonic

__all__ = ["SLOT_BYTES", "Balancer", "create"]

# A slot is two native 64-bit integers: the worker's pid (0: free) and its requests in flight.
SLOT_BYTES = 16


def create(path: str, workers: int) -> None:
    """The shared file for ``workers`` worker processes (``saleor-crm serve``, before it starts
    them): twice as many free slots, so that the new workers of a reload find their own."""
    with open(path, "wb") as file:
        file.write(b"\0" * SLOT_BYTES * max(2, 2 * workers))


# Seconds between two samples of a worker's established connections (``Balancer.enter``).
CONNECTIONS_SAMPLE = 0.1


def established(port: str | int) -> int:
    """This process's connected TCP sockets whose local port is ``port`` (the server's side of
    its clients' connections; Linux ``/proc``): each socket among the process's file
    descriptors is asked its local port through a duplicate (the kernel's whole TCP table in
    ``/proc/net/tcp`` would be read and parsed instead, ~4 ms with a benchmark's thousands
    of sockets in ``TIME_WAIT``). Taken at most every ``CONNECTIONS_SAMPLE`` seconds."""
    port = int(port)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:["):
                continue
            with socket.socket(fileno=os.dup(int(fd))) as sock:
                if sock.type != socket.SOCK_STREAM or sock.getsockname()[1] != port:
                    continue
                sock.getpeername()  # raises unless connected (the listening socket)
        except (OSError, IndexError, TypeError):
            continue
        count += 1
    return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to take over
        return True
    return True


class Balancer:
    """This worker's slot in the shared file, and the decision to close a connection."""

    def __init__(self, path: str, interval: float = 0.05, *, by_connections: bool = True) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_EX)  # one worker claims at a time
            try:
                self._cells = memoryview(self._map).cast("q")
                self._slot = self._claim()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        self._interval = interval
        self._next_close = 0.0
        # One item per request in flight: a deque's appends and pops are atomic, so the count
        # needs no lock (a lock round cost more than the rest of this module per request). What
        # is published is a snapshot of it: two threads interleaving may leave it one behind
        # until the next request publishes again, never drifting.
        self._requests: deque[None] = deque()
        # Connections mode (``enter(port)``): the last sample and when to take the next.
        self._by_connections = by_connections and os.path.isdir("/proc/self/fd")
        self._connections = 0
        self._next_sample = 0.0

    def _claim(self) -> int:
        cells = self._cells
        me = os.getpid()
        free = None
        for slot in range(0, len(cells), 2):
            pid = cells[slot]
            if pid == me:
                free = slot
                break
            if pid and not _alive(pid):
                cells[slot + 1] = 0  # a dead worker's requests are no one's load
                cells[slot] = 0
                pid = 0
            if not pid and free is None:
                free = slot
        if free is None:
            raise RuntimeError("no free slot in the connection balance file")
        cells[free + 1] = 0
        cells[free] = me
        return free + 1

    def enter(self, port: str | None = None) -> bool:
        """Count a request in; ``True`` when its worker holds more than its share and this
        answer should close its connection (the caller still calls :meth:`leave`).

        With ``port`` (the server's, from the request) and ``/proc`` at hand, the load is the
        worker's established connections on that port, sampled at most every
        ``CONNECTIONS_SAMPLE`` seconds (``established``): requests in flight cannot exceed
        the worker's request threads, so with more kept-alive connections than threads both
        workers' counts sat at the thread count and the split went unseen."""
        requests = self._requests
        requests.append(None)
        if port is None:
            self._by_connections = False  # no port to count connections on: requests, always
        if self._by_connections:
            now = monotonic()
            if now >= self._next_sample:
                self._next_sample = now + CONNECTIONS_SAMPLE
                try:
                    self._connections = established(port)
                except OSError:
                    self._by_connections = False
                    self._connections = 0
                self._cells[self._slot] = self._connections
            mine = self._connections
        else:
            mine = len(requests)
            self._cells[self._slot] = mine
        if mine < 2:  # one request is never above the mean + 1: no slots to read
            return False
        values = self._cells.tolist()
        workers = len(values) // 2 - values[0::2].count(0)
        # At least one request more than the mean of all workers, this worker included.
        if mine * workers < sum(values[1::2]) + workers:
            return False
        now = monotonic()
        if now < self._next_close:
            return False
        self._next_close = now + self._interval
        if self._by_connections and self._connections:
            # The connection this answer closes is no longer this worker's.
            self._connections -= 1
            self._cells[self._slot] = self._connections
        return True

    def leave(self) -> None:
        """Count a request out (its answer is built)."""
        requests = self._requests
        requests.pop()
        if not self._by_connections:  # a connections sample is published by ``enter``
            self._cells[self._slot] = len(requests)

    def release(self) -> None:
        """Free the slot (a worker shutting down cleanly; tests)."""
        self._cells[self._slot] = 0
        self._cells[self._slot - 1] = 0
