"""From the order projection to a sparse customer x product matrix.

Only paid, non-cancelled orders of known (not erased) customers count. Each order line adds
``log1p(net quantity)`` (refunded units removed), decayed by purchase age with a configurable
half-life, so a 48-pack of napkins does not drown everything else and last year's taste
fades. The raw per-line arrays are kept so the holdout split and the popularity rankings can
be computed from the very same data the model sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp
from django.db.models import QuerySet


@dataclass
class Interactions:
    """Per-purchase arrays (one entry per order line) plus the id maps of the matrix."""

    user_ids: list[int]  # customer pk of each matrix row
    item_ids: list[str]  # Saleor product id of each matrix column
    item_categories: list[str]  # category id of each column ("" when unknown)
    users: np.ndarray  # int32 row index per purchase
    items: np.ndarray  # int32 column index per purchase
    quantities: np.ndarray  # float32 net quantity per purchase
    paid_at: np.ndarray  # float64 epoch seconds per purchase
    orders: np.ndarray  # int64 order pk per purchase
    channels: np.ndarray  # int32 index into ``channel_ids`` per purchase
    channel_ids: list[str]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_purchases(self) -> int:
        return len(self.users)

    @property
    def until(self) -> float:
        return float(self.paid_at.max()) if len(self.paid_at) else 0.0

    def weights(self, half_life_days: float, reference: float | None = None) -> np.ndarray:
        """Per-purchase weight: log1p(quantity) halved every ``half_life_days``."""
        reference = self.until if reference is None else reference
        age_days = np.maximum(reference - self.paid_at, 0.0) / 86400.0
        decay = np.power(0.5, age_days / half_life_days) if half_life_days > 0 else 1.0
        return (np.log1p(self.quantities) * decay).astype(np.float32)

    def matrix(self, mask: np.ndarray | None = None, *, half_life_days: float) -> sp.csr_matrix:
        """Summed weights per (customer, product), optionally over a subset of purchases."""
        weights = self.weights(half_life_days)
        users, items = self.users, self.items
        if mask is not None:
            users, items, weights = users[mask], items[mask], weights[mask]
        matrix = sp.csr_matrix(
            (weights, (users, items)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        matrix.sum_duplicates()
        return matrix

    def item_features(self, *, use_categories: bool = True) -> sp.csr_matrix:
        """Identity plus one-hot category, rows normalised to sum 1 (LightFM's convention):
        a product with no purchases yet still gets its category's embedding (cold start)."""
        n = self.n_items
        identity = sp.identity(n, dtype=np.float32, format="csr")
        if not use_categories:
            return identity
        categories = sorted({c for c in self.item_categories if c})
        if not categories:
            return identity
        index = {c: i for i, c in enumerate(categories)}
        rows = [i for i, c in enumerate(self.item_categories) if c]
        cols = [index[self.item_categories[i]] for i in rows]
        one_hot = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(n, len(categories)),
        )
        features = sp.hstack([identity, one_hot], format="csr", dtype=np.float32)
        row_sums = np.asarray(features.sum(axis=1)).ravel()
        return sp.diags(1.0 / row_sums).dot(features).tocsr().astype(np.float32)


def paid_lines() -> QuerySet:
    """Lines that count as purchases. Imported lazily so the array code above runs without
    Django (benchmarks feed external data through ``build_interactions``)."""
    from saleor_crm_plugin.customers.models import NON_SALE_STATUSES, OrderLine

    return (
        OrderLine.objects.filter(
            order__paid_at__isnull=False,
            order__customer__isnull=False,
            order__customer__erased_at__isnull=True,
        )
        .exclude(order__status__in=NON_SALE_STATUSES)
        .exclude(product_id="")
    )


def extract_interactions(*, until: datetime | None = None) -> Interactions:
    """Read paid order lines into ``Interactions`` (one streaming query, no per-row ORM)."""
    lines = paid_lines()
    if until is not None:
        lines = lines.filter(order__paid_at__lte=until)
    rows = lines.values_list(
        "order__customer_id",
        "product_id",
        "category_id",
        "quantity",
        "quantity_refunded",
        "order__paid_at",
        "order_id",
        "order__channel_id",
    ).order_by()
    return build_interactions(rows.iterator(chunk_size=20000))


def build_interactions(rows) -> Interactions:  # type: ignore[no-untyped-def]
    """Rows are ``(customer, product, category, qty, refunded qty, paid_at, order, channel)``;
    also used by the benchmarks to feed external data through the same code path."""
    user_index: dict[int, int] = {}
    item_index: dict[str, int] = {}
    channel_index: dict[str, int] = {}
    categories: list[str] = []
    users: list[int] = []
    items: list[int] = []
    quantities: list[float] = []
    paid: list[float] = []
    orders: list[int] = []
    channels: list[int] = []
    for customer, product, category, qty, refunded, paid_at, order, channel in rows:
        net = qty - refunded
        if net <= 0:
            continue
        u = user_index.setdefault(customer, len(user_index))
        i = item_index.get(product)
        if i is None:
            i = item_index[product] = len(item_index)
            categories.append(category or "")
        elif category and not categories[i]:
            categories[i] = category
        users.append(u)
        items.append(i)
        quantities.append(net)
        paid.append(paid_at.timestamp() if isinstance(paid_at, datetime) else float(paid_at))
        orders.append(order)
        channels.append(channel_index.setdefault(channel, len(channel_index)))
    return Interactions(
        user_ids=list(user_index),
        item_ids=list(item_index),
        item_categories=categories,
        users=np.asarray(users, dtype=np.int32),
        items=np.asarray(items, dtype=np.int32),
        quantities=np.asarray(quantities, dtype=np.float32),
        paid_at=np.asarray(paid, dtype=np.float64),
        orders=np.asarray(orders, dtype=np.int64),
        channels=np.asarray(channels, dtype=np.int32),
        channel_ids=list(channel_index),
    )


@dataclass
class Holdout:
    """Time-based holdout: each customer's last order is the test set, the rest trains."""

    train_mask: np.ndarray  # bool per purchase
    test_users: np.ndarray  # row indexes of customers with a test order
    test_items: list[np.ndarray]  # distinct product columns of each test user's last order


def last_order_holdout(
    data: Interactions, *, max_users: int | None = None, seed: int = 0
) -> Holdout:
    """Hold out the last paid order of every customer who has at least two orders (a
    customer with one order has nothing to learn from). ``max_users`` samples the test users
    (seeded) to bound evaluation time; their last orders are still removed from training."""
    n = data.n_purchases
    if n == 0:
        return Holdout(np.ones(0, dtype=bool), np.zeros(0, dtype=np.int32), [])
    # Per user, the order with the latest paid_at (ties: higher order pk).
    order_key = np.lexsort((data.orders, data.paid_at, data.users))
    users_sorted = data.users[order_key]
    last_pos = np.r_[np.nonzero(np.diff(users_sorted))[0], len(users_sorted) - 1]
    last_order = np.full(data.n_users, -1, dtype=np.int64)
    last_order[users_sorted[last_pos]] = data.orders[order_key][last_pos]
    distinct = np.unique(np.stack([data.users.astype(np.int64), data.orders]), axis=1)
    orders_per_user = np.bincount(distinct[0], minlength=data.n_users)
    eligible = orders_per_user >= 2
    in_last = (data.orders == last_order[data.users]) & eligible[data.users]
    train_mask = ~in_last
    test_users = np.nonzero(eligible)[0].astype(np.int32)
    if max_users is not None and len(test_users) > max_users:
        rng = np.random.default_rng(seed)
        test_users = np.sort(rng.choice(test_users, size=max_users, replace=False))
    test_rows = sp.csr_matrix(
        (np.ones(int(in_last.sum()), dtype=np.float32), (data.users[in_last], data.items[in_last])),
        shape=(data.n_users, data.n_items),
    )
    test_rows.sum_duplicates()
    test_items = [
        test_rows.indices[test_rows.indptr[u] : test_rows.indptr[u + 1]] for u in test_users
    ]
    return Holdout(train_mask=train_mask, test_users=test_users, test_items=test_items)
