"""The served score, shared by evaluation, bulk precomputation and on-request scoring.

LightFM's raw scores are standardised per customer (their scale drifts between runs and
customers), then the customer's own recency-weighted purchases add ``repeat_weight x
log1p(4 x history)``: in shops where people restock, what they bought before is the single
best signal, and the holdout decides whether the blend earns its keep (see docs).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hybrid_scores(
    raw: np.ndarray, history: np.ndarray | sp.spmatrix | None, repeat_weight: float
) -> np.ndarray:
    """``raw`` is (users, items); ``history`` the same shape (dense or sparse) or None."""
    raw = np.asarray(raw, dtype=np.float32)
    mean = raw.mean(axis=1, keepdims=True)
    std = raw.std(axis=1, keepdims=True) + 1e-6
    scores = (raw - mean) / std
    if history is None or not repeat_weight:
        return scores
    if sp.issparse(history):
        # Only the purchased cells change: no dense (users x items) temporary.
        coo = history.tocoo()
        scores[coo.row, coo.col] += repeat_weight * np.log1p(4.0 * coo.data).astype(np.float32)
    else:
        scores += repeat_weight * np.log1p(4.0 * np.asarray(history)).astype(np.float32)
    return scores
