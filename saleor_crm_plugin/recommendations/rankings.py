"""Non-personalised rankings: popular and trending per channel, and bought-together pairs.

They serve anonymous and new customers, fill short personal lists, and are the fallback
whenever no model is promoted, so they are recomputed on every training run, promoted or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from saleor_crm_plugin.recommendations.data import Interactions

RANKING_SIZE = 100
ASSOCIATIONS_PER_PRODUCT = 20


def popular(
    data: Interactions, half_life_days: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """Recency-weighted purchase mass per product (over ``mask`` purchases)."""
    weights = data.weights(half_life_days)
    items = data.items
    if mask is not None:
        weights, items = weights[mask], items[mask]
    return np.bincount(items, weights=weights, minlength=data.n_items)


def trending(data: Interactions, days: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Distinct buyers in the last ``days`` against the rate of the four windows before:
    ``log1p(recent) x (recent + 1) / (earlier rate + 1)``, zero under two recent buyers."""
    window = days * 86400.0
    until = data.until
    select = np.ones(data.n_purchases, dtype=bool) if mask is None else mask
    recent = select & (data.paid_at > until - window)
    earlier = select & (data.paid_at <= until - window) & (data.paid_at > until - 5 * window)

    def buyers(m: np.ndarray) -> np.ndarray:
        pairs = np.unique(np.stack([data.items[m], data.users[m]]), axis=1)
        return np.bincount(pairs[0], minlength=data.n_items).astype(np.float64)

    if not recent.any():
        return np.zeros(data.n_items)
    now_count = buyers(recent)
    before_rate = buyers(earlier) / 4.0 if earlier.any() else np.zeros(data.n_items)
    score = np.log1p(now_count) * (now_count + 1) / (before_rate + 1)
    score[now_count < 2] = 0.0
    return score


def top(
    scores: np.ndarray, item_ids: list[str], n: int = RANKING_SIZE
) -> tuple[list[str], list[float]]:
    order = np.lexsort((np.arange(len(scores)), -scores))
    order = [i for i in order[:n] if scores[i] > 0]
    return [item_ids[i] for i in order], [round(float(scores[i]), 6) for i in order]


@dataclass(frozen=True)
class Association:
    product_id: str
    other_product_id: str
    support: int
    confidence: float
    lift: float


def associations(
    data: Interactions, *, min_support: int, per_product: int = ASSOCIATIONS_PER_PRODUCT
) -> list[Association]:
    """Pairs of products in the same order, with lift > 1 and ``support >= min_support``,
    best ``per_product`` by confidence (then lift) for each product.

    One sparse product ``O.T @ O`` over the order x product incidence matrix, no pair loops."""
    if not data.n_purchases:
        return []
    order_ids, order_rows = np.unique(data.orders, return_inverse=True)
    incidence = sp.csr_matrix(
        (np.ones(data.n_purchases, dtype=np.float32), (order_rows, data.items)),
        shape=(len(order_ids), data.n_items),
    )
    incidence.sum_duplicates()
    incidence.data[:] = 1.0
    n_orders = float(len(order_ids))
    item_orders = np.asarray(incidence.sum(axis=0)).ravel()
    co = (incidence.T @ incidence).tocsr()
    co.setdiag(0)
    co.data[co.data < min_support] = 0
    co.eliminate_zeros()
    result: list[Association] = []
    for i in range(data.n_items):
        start, end = co.indptr[i], co.indptr[i + 1]
        if start == end:
            continue
        others = co.indices[start:end]
        support = co.data[start:end]
        confidence = support / item_orders[i]
        lift = confidence / (item_orders[others] / n_orders)
        keep = lift > 1.0
        if not keep.any():
            continue
        others, support, confidence, lift = (
            others[keep],
            support[keep],
            confidence[keep],
            lift[keep],
        )
        best = np.lexsort((others, -lift, -confidence))[:per_product]
        result.extend(
            Association(
                product_id=data.item_ids[i],
                other_product_id=data.item_ids[others[j]],
                support=int(support[j]),
                confidence=round(float(confidence[j]), 6),
                lift=round(float(lift[j]), 6),
            )
            for j in best
        )
    return result
