"""DataLoader base: one instance per request and class, so every list resolves with a constant
number of SQL queries however many parents it has (Saleor's ``core/dataloaders.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from promise import Promise
from promise.dataloader import DataLoader as BaseLoader

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

    def batch_load(self, keys: list[K]) -> Iterable[R]:
        raise NotImplementedError


def group_by(rows: Iterable[Any], key: str) -> dict[Any, list[Any]]:
    """``{key value: [rows...]}`` keeping row order; the usual last step of ``batch_load``."""
    groups: dict[Any, list[Any]] = {}
    for row in rows:
        groups.setdefault(getattr(row, key), []).append(row)
    return groups
