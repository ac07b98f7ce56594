"""The collector's settings: the App's processes settle their heap once started
(``settle``: ``gc.freeze()`` and a larger young generation), and a worker's batch steps hold off
automatic collection while they run (``paused_gc``, both modes).

CPython's cyclic collector runs whenever 700 more container objects have been allocated than
freed. A worker batch holds hundreds of parsed webhook bodies alive (thousands of dicts and
lists each), so young collections keep finding live objects, promote them, and every few
batches a full collection walks the whole heap: Django, graphene's schema, the LightFM model
and the batch, ~70 ms each. Measured on an in-process drain of 2,000 UCI events, the collector
took ~0.2 ms of a worker's ~1.2 ms per event; on a customer 360 request ~5%.

Two standard remedies, applied once when a process has imported and built what it serves:

* ``gc.freeze()`` moves every object alive at that moment (modules, settings, the schema, the
  URL resolver) into a permanent generation that no collection walks again; in a Celery
  prefork parent it also keeps the pool children from writing to those pages (copy on write).
* a young-generation threshold of ``CRM_GC_YOUNG_THRESHOLD`` allocations instead of 700: a
  request's or a batch's temporary objects are mostly freed by reference counting before a
  collection looks at them, so far fewer are examined and promoted.

Reference cycles are still collected, only less often. Plugin mode never calls this: the
process is Saleor's, and its collector is Saleor's business. ``0`` leaves the collector as
Python set it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from saleor_crm_plugin.conf import crm_settings


def settle() -> bool:
    """Freeze the objects alive now and raise the young generation's threshold (keeping the
    older generations' own thresholds). Returns whether anything was changed. Safe to call
    again (a second freeze adds what was built since)."""
    threshold = crm_settings.GC_YOUNG_THRESHOLD
    if threshold <= 0:
        return False
    gc.collect()  # start-up garbage would otherwise be frozen with the rest
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
    return True


@contextmanager
def paused_gc() -> Iterator[None]:
    """Automatic garbage collection off for the block, back on when it ends (normally or by an
    exception) only if it was on when the block began.

    A batch of 500 inbox events builds and drops hundreds of thousands of container objects
    (parsed bodies, snapshots, model instances, ledger rows) that live until the batch ends:
    with collection on they were promoted and set off full collections over every object of
    the process. Nearly all are freed by reference counting the moment the batch drops them;
    the collector only has to find reference cycles, and those can wait the length of a
    batch. Nested blocks, a process that runs with collection off, and two threads overlapping
    their blocks are all left consistent (a thread may then run part of its block with
    collection on, which costs only speed). Nothing is collected explicitly: the next
    allocation after the block sets off the usual young collection."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
