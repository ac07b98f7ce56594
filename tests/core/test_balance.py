"""The connection balance's shared slots and its decision (``core/balance.py``)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from saleor_crm_plugin.core.balance import SLOT_BYTES, Balancer, create


def _slots(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    values = struct.unpack(f"{len(data) // 8}q", data)
    return list(zip(values[0::2], values[1::2], strict=True))


def _write_slot(path: Path, index: int, pid: int, in_flight: int) -> None:
    with path.open("r+b") as file:
        file.seek(index * SLOT_BYTES)
        file.write(struct.pack("qq", pid, in_flight))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    path = tmp_path / "balance"
    create(str(path), 2)
    return path


def test_twice_as_many_slots_as_workers_all_free(shared: Path) -> None:
    assert _slots(shared) == [(0, 0)] * 4


def test_a_worker_claims_a_free_slot_and_publishes_its_requests(shared: Path) -> None:
    _write_slot(shared, 0, os.getppid(), 3)  # another live worker
    balancer = Balancer(str(shared))
    assert _slots(shared)[:2] == [(os.getppid(), 3), (os.getpid(), 0)]

    balancer.enter()
    balancer.enter()
    assert _slots(shared)[1] == (os.getpid(), 2)
    balancer.leave()
    balancer.leave()
    assert _slots(shared)[1] == (os.getpid(), 0)

    balancer.release()
    assert _slots(shared)[1] == (0, 0)


def test_a_dead_workers_slot_is_taken_over_and_its_count_dropped(shared: Path) -> None:
    _write_slot(shared, 0, _dead_pid(), 7)
    _write_slot(shared, 1, os.getppid(), 1)
    Balancer(str(shared))
    assert _slots(shared) == [(os.getpid(), 0), (os.getppid(), 1), (0, 0), (0, 0)]


def test_no_free_slot(shared: Path) -> None:
    for index in range(4):
        _write_slot(shared, index, os.getppid(), 0)
    with pytest.raises(RuntimeError, match="no free slot"):
        Balancer(str(shared))


def test_closes_only_above_the_mean_plus_one_and_at_most_once_per_interval(
    shared: Path,
) -> None:
    """Two workers: a request closes its connection when its worker holds two more requests
    than the other (itself included), never in a balanced server."""
    _write_slot(shared, 0, os.getppid(), 0)
    balancer = Balancer(str(shared), interval=3600)

    assert balancer.enter() is False  # 1 against 0
    assert balancer.enter() is True  # 2 against 0: this one's client goes elsewhere
    assert balancer.enter() is False  # 3 against 0, but one close per interval
    for _ in range(3):
        balancer.leave()

    _write_slot(shared, 0, os.getppid(), 5)
    again = Balancer(str(shared), interval=0)
    decisions = [again.enter() for _ in range(8)]
    # 1..5 against 5 keep their connections, 6 against 5 too (one more than the mean of 5.5
    # is 6.5), 7 against 5 and 8 against 5 close theirs.
    assert decisions == [False] * 6 + [True, True]


def test_three_workers_compare_with_the_mean_of_all(shared: Path, tmp_path: Path) -> None:
    path = tmp_path / "three"
    create(str(path), 3)
    _write_slot(path, 0, os.getppid(), 4)
    _write_slot(path, 1, os.getppid(), 1)
    balancer = Balancer(str(path), interval=0)
    # mine + 5 others over 3 workers: closes once mine >= (mine + 5) / 3 + 1, i.e. mine >= 4
    assert [balancer.enter() for _ in range(5)] == [False, False, False, True, True]


def test_concurrent_requests_never_drift_the_count(shared: Path) -> None:
    """Threads entering and leaving at once (no gate) may leave the published snapshot one
    update behind, but the count itself stays exact: the next request publishes it right."""
    balancer = Balancer(str(shared), interval=3600)
    seen: list[int] = []

    def requests() -> None:
        for _ in range(5000):
            balancer.enter()
            seen.append(_slots(shared)[0][1]) if len(seen) < 100 else None
            balancer.leave()

    threads = [threading.Thread(target=requests) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(0 <= count <= 8 for count in seen)
    balancer.enter()
    assert _slots(shared)[0] == (os.getpid(), 1)
    balancer.leave()
    assert _slots(shared)[0] == (os.getpid(), 0)


@pytest.fixture
def listener():
    """A listening socket on loopback with its port, and a way to connect N clients to it
    (both ends in this process: only the server's side counts)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    port = server.getsockname()[1]
    opened: list[socket.socket] = []

    def connect(n: int) -> list[socket.socket]:
        accepted = []
        for _ in range(n):
            opened.append(socket.create_connection(("127.0.0.1", port)))
            accepted.append(server.accept()[0])
        opened.extend(accepted)
        return accepted

    yield port, connect
    for sock in opened:
        sock.close()
    server.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="Linux /proc")
def test_established_counts_this_process_server_side_connections(listener) -> None:
    import socket

    from saleor_crm_plugin.core.balance import established

    port, connect = listener
    assert established(port) == 0  # the listening socket is not a connection
    accepted = connect(5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        assert established(port) == 5  # the client sides (other local ports) do not count
        assert established(str(port)) == 5  # as WSGI's SERVER_PORT gives it
        accepted[0].close()
        assert established(port) == 4
    finally:
        udp.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="Linux /proc")
def test_with_the_port_the_load_is_the_workers_connections(
    shared: Path, listener, monkeypatch
) -> None:
    """More kept-alive connections than request threads: the requests in flight (1 here) would
    say nothing, the connections (6 against the other worker's 2) say this worker holds more
    than its share; after the close the published count is one lower, and the next sample
    comes only after ``CONNECTIONS_SAMPLE``."""
    from saleor_crm_plugin.core import balance as module

    monkeypatch.setattr(module, "CONNECTIONS_SAMPLE", 3600.0)  # one sample for the test
    port, connect = listener
    _write_slot(shared, 0, os.getppid(), 2)
    balancer = Balancer(str(shared), interval=0)
    connect(6)
    assert balancer.enter(str(port)) is True  # 6 >= (6 + 2) / 2 + 1
    assert _slots(shared)[1] == (os.getpid(), 5)  # the closed one already left
    balancer.leave()
    assert _slots(shared)[1] == (os.getpid(), 5)  # leave does not publish requests instead
    # No new sample yet: 5 against 2 still closes (two more than the other), 4 too, 3 keeps.
    assert [balancer.enter(str(port)) for _ in range(3)] == [True, True, False]
    assert _slots(shared)[1] == (os.getpid(), 3)
    for _ in range(3):
        balancer.leave()


@pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="Linux /proc")
def test_a_balanced_split_of_connections_closes_nothing(shared: Path, listener) -> None:
    port, connect = listener
    _write_slot(shared, 0, os.getppid(), 6)
    balancer = Balancer(str(shared), interval=0)
    connect(6)
    assert [balancer.enter(str(port)) for _ in range(4)] == [False] * 4
    for _ in range(4):
        balancer.leave()
