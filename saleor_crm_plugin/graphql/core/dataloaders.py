"""DataLoader base: one instance per request and class, so every list resolves with a constant
number of SQL queries however many parents it has (Saleor's ``core/dataloaders.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any, Generic, TypeVar

from promise import Promise
from promise.dataloader import DataLoader as BaseLoader
from promise.promise import async_instance, get_default_scheduler

K = TypeVar("K")
R = TypeVar("R")


class DataLoader(BaseLoader, Generic[K, R]):
    """Subclasses set a unique ``context_key`` and implement ``batch_load(keys)`` returning one
    result per key, in key order. Use as ``MyLoader(info.context).load(key)``.

    ``MyLoader(info.context, columns)`` is the request's loader for one set of columns
    (``selection.selected_columns``; ``None``: all), read by ``batch_load`` as
    ``self.columns``: objects selected with different fields come from different batches,
    so none is built with fewer columns than its selection reads. Further (hashable)
    arguments, ``variant``, also give loaders of their own: a subclass reads them in its
    ``__init__`` (what it loads alongside its objects, say)."""

    context_key: str = ""
    columns: frozenset[str] | None = None

    def __new__(
        cls, context: Any, columns: frozenset[str] | None = None, *variant: Any
    ) -> DataLoader[K, R]:
        if not cls.context_key:
            raise TypeError(f"{cls.__name__} must set context_key.")
        if variant:
            slot: Any = (cls.context_key, columns, *variant)
        else:
            slot = cls.context_key if columns is None else (cls.context_key, columns)
        loaders = context.dataloaders
        loader = loaders.get(slot)
        if loader is None:
            loader = loaders[slot] = super().__new__(cls)
        assert isinstance(loader, cls), f"two loaders share context_key {cls.context_key!r}"
        return loader

    def __init__(self, context: Any, columns: frozenset[str] | None = None, *variant: Any) -> None:
        if getattr(self, "context", None) is not context:
            self.context = context
            self.columns = columns
            super().__init__()

    def columns_with(self, *required: str) -> frozenset[str] | None:
        """``self.columns`` plus the attributes ``batch_load`` itself reads (to match rows
        to keys, say); ``None`` (every column) stays ``None``."""
        return None if self.columns is None else self.columns.union(required)

    def batch_load_fn(self, keys: list[K]) -> Promise:
        return Promise.resolve(self.batch_load(keys))

    # ``load`` and its dispatch are promise's own (``promise.dataloader``) for the set-up every
    # loader here has (a cache keyed by the key itself, batches of any size), with the same
    # jobs on the same queue in the same order, so batches and answers are the same under
    # either executor. What goes is the bookkeeping around them: a promise built through an
    # executor callback per key, and the batch's result wrapped in a promise only to be
    # ``then``-ed once (a customer 360 has three loads; each cost ~50 µs of promise calls).

    def load(self, key: K | None = None) -> Promise:
        """A promise of ``key``'s value, from this request's cache or the next batch."""
        if key is None:
            raise TypeError(
                f"The loader.load() function must be called with a value, but got: {key}."
            )
        promise = self._promise_cache.get(key)
        if promise is not None:
            return promise
        promise = self._promise_cache[key] = Promise()
        queue = self._queue
        queue.append((key, promise))
        if len(queue) == 1:
            # As promise's loader: one dispatch per batch, after the promise jobs queued.
            _post_promise_job(self._dispatch, self._scheduler)
        return promise

    def _dispatch(self) -> None:
        """``dispatch_queue``: run ``batch_load`` now, settle the promises one job later
        (where promise's loader ``then``-ed the batch); a raising ``batch_load`` rejects them
        at once and forgets them, as ``failed_dispatch`` does."""
        queue, self._queue = self._queue, []
        try:
            values = self.batch_load([key for key, _ in queue])
        except Exception as exc:
            self._fail(queue, exc)
            return
        async_instance.invoke(partial(self._settle, queue, values), get_default_scheduler())

    def _settle(self, queue: list[tuple[K, Promise]], values: Any) -> None:
        if not isinstance(values, Iterable) or len(values) != len(queue):  # type: ignore[arg-type]
            self._fail(
                queue,
                TypeError(
                    f"{type(self).__name__}.batch_load must return one value per key, in key "
                    f"order; got {values!r} for {len(queue)} keys."
                ),
            )
            return
        for (_, promise), value in zip(queue, values, strict=True):
            if isinstance(value, Exception):
                promise.do_reject(value)
            else:
                promise.do_resolve(value)

    def _fail(self, queue: list[tuple[K, Promise]], error: Exception) -> None:
        for key, promise in queue:
            self.clear(key)
            promise.do_reject(error)

    def batch_load(self, keys: list[K]) -> Iterable[R]:
        raise NotImplementedError


def _post_promise_job(fn: Any, scheduler: Any) -> None:
    """``promise.dataloader.enqueue_post_promise_job(fn, scheduler)``: the same two jobs on
    the same queue. Promise's version ``then``-s a resolved promise, which queues one job
    (settling a new promise with a handler that queues ``fn``), then ``fn`` runs as the
    second; here the first job queues ``fn`` itself, without the promise, its ``then``, the
    handler's closure and the settling (~2% of a customer 360's instructions). Only the
    order of the jobs decides batches, and it is the same (``test_core.py`` runs one nested
    scenario through promise's loader and this one)."""
    if not scheduler:
        scheduler = get_default_scheduler()
    async_instance.invoke(partial(async_instance.invoke, fn, scheduler), get_default_scheduler())


def group_by(rows: Iterable[Any], key: str) -> dict[Any, list[Any]]:
    """``{key value: [rows...]}`` keeping row order; the usual last step of ``batch_load``."""
    groups: dict[Any, list[Any]] = {}
    for row in rows:
        groups.setdefault(getattr(row, key), []).append(row)
    return groups


def group_by_column(rows: Iterable[Any], attname: str) -> dict[Any, list[Any]]:
    """``group_by(rows, attname)`` for model instances and the attname of one of their
    concrete fields (``order_id``), read from each instance's ``__dict__``.

    A foreign key's attname is a data descriptor (``ForeignKeyDeferredAttribute``): every
    ``getattr`` calls its Python ``__get__``, which answers the ``__dict__`` entry when
    there is one (30 lines a customer 360). A missing entry (a deferred column) still goes
    through ``getattr``, which loads it as before."""
    groups: dict[Any, list[Any]] = {}
    for row in rows:
        values = row.__dict__
        value = values[attname] if attname in values else getattr(row, attname)
        found = groups.get(value)
        if found is None:
            groups[value] = [row]
        else:
            found.append(row)
    return groups
