"""LightFM fitting and the float32 representations we keep from it.

Deterministic: a fixed seed and, when ``threads == 1``, one Hogwild thread, so the same data
gives bit-identical embeddings (tests rely on it). More threads train faster but race.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class TrainingParams:
    components: int = 64
    epochs: int = 15
    # Epochs of the warm-start refit on all data after a winning evaluation (0 = full refit).
    refit_epochs: int = 5
    learning_rate: float = 0.05
    loss: str = "warp"
    item_alpha: float = 5e-4
    user_alpha: float = 5e-4
    max_sampled: int = 30
    seed: int = 42
    threads: int = 2
    half_life_days: float = 180.0
    use_categories: bool = False
    use_product_types: bool = False
    use_attributes: bool = False
    # User features: the channels a customer bought in, their country (cold start for users).
    use_user_channels: bool = False
    use_user_countries: bool = False
    repeat_weight: float = 2.0
    # Storefront event kind -> weight relative to a one-unit purchase; empty = events unused.
    # A tuple of pairs so the frozen params stay hashable.
    event_weights: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["event_weights"] = dict(self.event_weights)
        return values


@dataclass
class Representations:
    """What serving needs: ``score = user_factors @ item_factors.T + item_biases``."""

    user_factors: np.ndarray  # (n_users, components) float32, user features folded in
    user_biases: np.ndarray  # (n_users,) float32
    item_factors: np.ndarray  # (n_items, components) float32, features folded in
    item_biases: np.ndarray  # (n_items,) float32
    epoch_seconds: list[float] = field(default_factory=list)
    # Embeddings and biases of the user-feature columns after the identity block (channels,
    # countries), for scoring a customer the model has never seen; (0, components) when the
    # fit had no user features.
    user_feature_factors: np.ndarray | None = None
    user_feature_biases: np.ndarray | None = None
    # The fitted LightFM object, kept in memory only (never stored) for a warm-start refit.
    model: object | None = field(default=None, repr=False, compare=False)


def fit(
    weights: sp.csr_matrix,
    item_features: sp.csr_matrix | None,
    params: TrainingParams,
    *,
    warm_start: Representations | None = None,
    epochs: int | None = None,
    user_features: sp.csr_matrix | None = None,
) -> Representations:
    """Fit LightFM on a weighted interaction matrix (weights become ``sample_weight``; WARP
    samples positives from the non-zero entries) and return float32 representations.

    ``warm_start`` continues training the model of an earlier fit on the same users and items
    (the holdout fit, now with the held-out orders added) for ``epochs`` more epochs: the
    refit then costs a few epochs instead of a full training (``user_features`` must then
    have the same columns as in the first fit).

    ``user_features`` (identity first, then the feature columns; ``None`` = identity only,
    exactly the fit without user features) is folded into ``user_factors``; the feature
    columns' own embeddings are returned separately for cold-start scoring."""
    from lightfm import LightFM

    coo = weights.tocoo()
    interactions = sp.coo_matrix(
        (np.ones_like(coo.data, dtype=np.float32), (coo.row, coo.col)), shape=coo.shape
    )
    if warm_start is not None and warm_start.model is not None:
        model = warm_start.model
    else:
        model = LightFM(
            no_components=params.components,
            loss=params.loss,
            learning_rate=params.learning_rate,
            item_alpha=params.item_alpha,
            user_alpha=params.user_alpha,
            max_sampled=params.max_sampled,
            random_state=np.random.RandomState(params.seed),
        )
    epoch_seconds: list[float] = []
    for _ in range(params.epochs if epochs is None else epochs):
        started = time.perf_counter()
        model.fit_partial(
            interactions,
            sample_weight=coo.astype(np.float32),
            user_features=user_features,
            item_features=item_features,
            epochs=1,
            num_threads=params.threads,
        )
        epoch_seconds.append(time.perf_counter() - started)
    item_biases, item_factors = model.get_item_representations(item_features)
    user_biases, user_factors = model.get_user_representations(user_features)
    n_users = weights.shape[0]
    return Representations(
        user_factors=np.ascontiguousarray(user_factors, dtype=np.float32),
        user_biases=np.ascontiguousarray(user_biases, dtype=np.float32),
        item_factors=np.ascontiguousarray(item_factors, dtype=np.float32),
        item_biases=np.ascontiguousarray(item_biases, dtype=np.float32),
        epoch_seconds=epoch_seconds,
        user_feature_factors=np.ascontiguousarray(model.user_embeddings[n_users:], np.float32),
        user_feature_biases=np.ascontiguousarray(model.user_biases[n_users:], np.float32),
        model=model,
    )
