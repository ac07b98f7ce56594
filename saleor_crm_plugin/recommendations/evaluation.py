"""Offline ranking metrics at K and the two baselines every model must beat.

Pure numpy (no ORM), shared by the training service, the tests and the benchmarks. Scores
are computed in user batches so memory stays at ``batch x n_items`` floats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

Scorer = Callable[[np.ndarray], np.ndarray]  # user row indexes -> (len, n_items) scores

METRICS = ("precision", "recall", "ndcg", "map", "coverage")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indexes of the ``k`` best scores per row, best first (ties: lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def ranking_metrics(
    scorer: Scorer,
    test_users: np.ndarray,
    test_items: Sequence[np.ndarray],
    n_items: int,
    *,
    k: int = 10,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean precision@k, recall@k, NDCG@k and MAP@k over test users, plus catalogue coverage
    (share of products that appear in at least one top-k list)."""
    if len(test_users) == 0:
        return dict.fromkeys(METRICS, 0.0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    sums = dict.fromkeys(("precision", "recall", "ndcg", "map"), 0.0)
    recommended = np.zeros(n_items, dtype=bool)
    for start in range(0, len(test_users), batch_size):
        batch = test_users[start : start + batch_size]
        ranked = top_k(scorer(batch), k)
        recommended[ranked.ravel()] = True
        for row, truth in zip(ranked, test_items[start : start + batch_size], strict=True):
            hits = np.isin(row, truth)
            n_hits = int(hits.sum())
            n_true = len(truth)
            sums["precision"] += n_hits / k
            sums["recall"] += n_hits / n_true
            ideal = discounts[: min(n_true, k)].sum()
            sums["ndcg"] += float(discounts[: len(row)][hits].sum() / ideal)
            if n_hits:
                precision_at_hits = np.cumsum(hits)[hits] / (np.nonzero(hits)[0] + 1)
                sums["map"] += float(precision_at_hits.sum() / min(n_true, k))
    n = len(test_users)
    result = {name: value / n for name, value in sums.items()}
    result["coverage"] = float(recommended.sum() / n_items) if n_items else 0.0
    return result


def popularity_scores(train: sp.csr_matrix) -> np.ndarray:
    """Recency-weighted purchase mass per product."""
    return np.asarray(train.sum(axis=0)).ravel().astype(np.float32)


def popularity_scorer(train: sp.csr_matrix) -> Scorer:
    popularity = popularity_scores(train)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(popularity, (len(users), len(popularity)))

    return score


def buy_again_scorer(train: sp.csr_matrix) -> Scorer:
    """The customer's own purchases (recency-weighted), then popular products: the baseline a
    retailer gets for free, and a strong one where repeat purchases dominate."""
    popularity = popularity_scores(train)
    tie_break = popularity / (popularity.max() or 1.0) * 1e-3

    def score(users: np.ndarray) -> np.ndarray:
        return train[users].toarray() + tie_break

    return score


def factor_scorer(
    user_factors: np.ndarray, item_factors: np.ndarray, item_biases: np.ndarray
) -> Scorer:
    """LightFM's prediction without the user bias (constant per user, so rank-neutral)."""

    def score(users: np.ndarray) -> np.ndarray:
        return user_factors[users] @ item_factors.T + item_biases

    return score
