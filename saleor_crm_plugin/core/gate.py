"""One request thread runs our Python at a time per process, except while it waits on Saleor.

The App serves CPU-bound requests (a customer 360 is ~1.7 ms of Python and four short SQL
round trips) from several threads per process so that a request waiting on Saleor (a staff
token's permissions, a JWKS refresh on an unknown key, a gift card issued on redemption) does
not hold up the requests queued behind it. Under load those threads contend for the GIL: each
SQL round trip hands the GIL to another thread, and the first thread then waits for it again,
up to the 5 ms switch interval, so every request pays for its neighbours' Python several times
over. With one thread per process (granian 2 x 1) the 360 reached p95 20.5 ms against 25.3 ms
for 2 x 4 on the same machine (docs/benchmarks.md, server layout), but then a request waiting
on Saleor blocks its whole process.

The gate gives both: a request holds it from the moment the WSGI handler takes it until its
response is built, so the threads of one process take turns per request rather than per round
trip; :func:`released` opens it for the length of a call to Saleor (``core/saleor_api.py`` is
the only place that calls Saleor), so the other threads run while one waits. The webhook's
acknowledgement opens it the same way while its insert waits for PostgreSQL's WAL flush, ~2 ms
against ~0.5 ms of CPU for the whole ack (``events/inbox.py``, ``store_webhook``). Outside a gated
request (Celery workers, plugin mode inside Saleor, tests calling views directly) it is never
taken and :func:`released` does nothing.

The customer 360 keeps the gate while PostgreSQL renders its JSON (``graphql/customers/
sql_render.py``, ~0.4 ms of PostgreSQL's CPU per request): opening it there let another thread
of the process run meanwhile, but the returning thread then waited for that neighbour's whole
request, and p95/p99 at 20 clients rose (26.1 / 23.8 and 45 / 39 ms against 17.2 / 24.0 and
26 / 32 ms, alternated runs, docs/benchmarks.md, eighth session).
"""

from __future__ import annotations

import threading
from threading import get_ident

__all__ = ["enter", "inside", "leave", "released"]

_gate = threading.Lock()
# The thread holding the gate. Only that thread writes its own id here, so another thread
# reading it (racily) never sees its own id: "do I hold it?" needs no lock.
_holder: int | None = None


def enter() -> bool:
    """Take the gate for one request; ``False`` (and nothing taken) when this thread holds it
    already (a request that calls the App in-process, say), so it does not wait for itself.
    Plain functions rather than a context manager: the webhook's acknowledgement pays for
    every call here."""
    global _holder
    me = get_ident()
    if _holder == me:
        return False
    _gate.acquire()
    _holder = me
    return True


def leave() -> None:
    """Give back what :func:`enter` took (only call it when that returned ``True``)."""
    global _holder
    _holder = None
    _gate.release()


def inside() -> bool:
    """Whether this thread holds the gate."""
    return _holder == get_ident()


class released:
    """Let the process's other request threads run while this one waits on the network.

    A class rather than a ``@contextmanager`` generator: the acknowledgement enters it once
    per webhook, and the generator's creation and two resumptions cost more than the gate
    itself (~12k instructions per acknowledgement, feat/a8)."""

    __slots__ = ("_left",)

    def __enter__(self) -> None:
        self._left = _holder == get_ident()
        if self._left:
            leave()

    def __exit__(self, *exc_info: object) -> None:
        if self._left:
            enter()
