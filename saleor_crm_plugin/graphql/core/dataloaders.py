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
    result per key, in key order. Use as ``MyLoader(info.context).load(key)``."""

    context_key: str = ""

    def __new__(cls, context: Any) -> DataLoader[K, R]:
        if not cls.context_key:
            raise TypeError(f"{cls.__name__} must set context_key.")
        loaders = context.dataloaders
        if cls.context_key not in loaders:
            loaders[cls.context_key] = super().__new__(cls)
        loader = loaders[cls.context_key]
        assert isinstance(loader, cls), f"two loaders share context_key {cls.context_key!r}"
        return loader

    def __init__(self, context: Any) -> None:
        if getattr(self, "context", None) is not context:
            self.context = context
            super().__init__()

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
