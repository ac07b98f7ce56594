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
the only place that calls Saleor), so the other threads run while one waits. Outside a gated
request (Celery workers, plugin mode inside Saleor, tests calling views directly) it is never
taken and :func:`released` does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["held", "released"]

_gate = threading.Lock()
_holder = threading.local()


@contextmanager
def held() -> Iterator[None]:
    """Hold the gate for one request; re-entered by the same thread (a request that calls the
    App in-process, say) it does not wait for itself."""
    if getattr(_holder, "inside", False):
        yield
        return
    _gate.acquire()
    _holder.inside = True
    try:
        yield
    finally:
        _holder.inside = False
        _gate.release()


@contextmanager
def released() -> Iterator[None]:
    """Let the process's other request threads run while this one waits on the network."""
    if not getattr(_holder, "inside", False):
        yield
        return
    _holder.inside = False
    _gate.release()
    try:
        yield
    finally:
        _gate.acquire()
        _holder.inside = True
