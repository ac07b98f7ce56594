"""Automatic cyclic garbage collection held off while a batch is worked on in memory.

A batch of 500 inbox events builds and drops hundreds of thousands of container objects
(parsed bodies, snapshots, model instances, ledger rows): CPython's collector ran ~430 young
and ~40 middle collections per 2,000 events, and because the batch's objects live until the
batch ends they were promoted and set off full collections over every object of the process
(Django's included), in all about a tenth of the worker's CPU. Nearly everything a batch makes
is freed by reference counting the moment the batch drops it; the collector only has to find
reference cycles, and those can wait the length of a batch.

``paused_gc()`` turns automatic collection off for its block and back on when the block ends
(normally or by an exception) only if it was on when the block began, so nested blocks,
a process that runs with it off, and two threads overlapping their blocks are all left
consistent (a thread may then run part of its block with collection on, which costs only
speed). Nothing is collected explicitly: the next allocation after the block sets off the
usual young collection, which also meets whatever cycles the block left.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Automatic garbage collection off for the block (see the module docstring)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
