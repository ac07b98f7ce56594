"""Training runs: extract, hold out, fit, measure against baselines, promote or fall back.

The whole nightly job is one call, ``train_model()``, run by a Celery task on the ``ml``
queue. Everything a merchant may want to audit is stored on the ``ModelRun``: parameters,
data sizes, timings and the holdout metrics of the model *and* both baselines.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import scipy.sparse as sp
from django.db import transaction
from django.utils import timezone

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.customers.models import NON_SALE_STATUSES, Order
from saleor_crm_plugin.recommendations import evaluation, rankings, scoring
from saleor_crm_plugin.recommendations.centroids import country_centroids
from saleor_crm_plugin.recommendations.data import (
    Interactions,
    channel_feature,
    country_feature,
    extract_interactions,
    last_order_holdout,
)
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.recommendations.models import (
    ChannelRanking,
    ModelArtefact,
    ModelRun,
    PrecomputedRecommendation,
    ProductAssociation,
    RankingKind,
    RunDecision,
    RunStatus,
)
from saleor_crm_plugin.recommendations.training import Representations, TrainingParams, fit

logger = logging.getLogger(__name__)

K = 10
STALE_RUN_AFTER = timedelta(hours=2)


def params_from_settings(**overrides: object) -> TrainingParams:
    params = TrainingParams(
        components=crm_settings.RECS_COMPONENTS,
        epochs=crm_settings.RECS_EPOCHS,
        learning_rate=crm_settings.RECS_LEARNING_RATE,
        loss=crm_settings.RECS_LOSS,
        item_alpha=crm_settings.RECS_ITEM_ALPHA,
        user_alpha=crm_settings.RECS_USER_ALPHA,
        max_sampled=crm_settings.RECS_MAX_SAMPLED,
        seed=crm_settings.RECS_SEED,
        threads=crm_settings.RECS_THREADS,
        half_life_days=crm_settings.RECS_HALF_LIFE_DAYS,
        use_categories=crm_settings.RECS_CATEGORY_FEATURES,
        use_product_types=crm_settings.RECS_PRODUCT_TYPE_FEATURES,
        use_attributes=crm_settings.RECS_ATTRIBUTE_FEATURES,
        use_user_channels=crm_settings.RECS_USER_CHANNEL_FEATURES,
        use_user_countries=crm_settings.RECS_USER_COUNTRY_FEATURES,
        repeat_weight=crm_settings.RECS_REPEAT_WEIGHT,
        refit_epochs=crm_settings.RECS_REFIT_EPOCHS,
        event_weights=tuple(sorted(crm_settings.RECS_EVENT_WEIGHTS.items())),
    )
    return replace(params, **overrides) if overrides else params  # type: ignore[arg-type]


def item_features(data: Interactions, params: TrainingParams) -> sp.csr_matrix:
    return data.item_features(
        use_categories=params.use_categories,
        use_product_types=params.use_product_types,
        use_attributes=params.use_attributes,
    )


def user_features(
    data: Interactions, params: TrainingParams, mask: np.ndarray | None = None
) -> sp.csr_matrix | None:
    """``None`` unless a user-feature setting is on and the data has such a feature."""
    return data.user_features(
        mask, use_channels=params.use_user_channels, use_countries=params.use_user_countries
    )


def user_feature_names(data: Interactions, params: TrainingParams) -> list[str]:
    return data.user_feature_names(
        use_channels=params.use_user_channels, use_countries=params.use_user_countries
    )


@dataclass
class Evaluation:
    metrics: dict[str, dict[str, float]]
    n_test_users: int
    representations: Representations

    @property
    def best_baseline(self) -> tuple[str, float]:
        name = max(("popularity", "buy_again"), key=lambda n: self.metrics[n]["ndcg"])
        return name, self.metrics[name]["ndcg"]


def evaluate(data: Interactions, params: TrainingParams, *, max_users: int) -> Evaluation:
    """Fit on everything but each customer's last order and rank that order's products.

    Storefront events (when enabled) join the fit only; ``train`` (the repeat term and both
    baselines) and the targets stay purchases, so the metrics compare with runs without."""
    holdout = last_order_holdout(data, max_users=max_users, seed=params.seed)
    train = data.matrix(holdout.train_mask, half_life_days=params.half_life_days)
    fit_on = data.training_matrix(
        holdout.train_mask,
        half_life_days=params.half_life_days,
        event_mask=data.event_mask(holdout),
    )
    reps = fit(
        fit_on,
        item_features(data, params),
        params,
        user_features=user_features(data, params, holdout.train_mask),
    )
    raw = evaluation.factor_scorer(reps.user_factors, reps.item_factors, reps.item_biases)

    def model_scorer(users: np.ndarray) -> np.ndarray:
        return scoring.hybrid_scores(raw(users), train[users], params.repeat_weight)

    scorers = {
        "model": model_scorer,
        "lightfm": raw,
        "popularity": evaluation.popularity_scorer(train),
        "buy_again": evaluation.buy_again_scorer(train),
    }
    metrics = {
        name: evaluation.ranking_metrics(
            scorer, holdout.test_users, holdout.test_items, data.n_items, k=K
        )
        for name, scorer in scorers.items()
    }
    return Evaluation(metrics=metrics, n_test_users=len(holdout.test_users), representations=reps)


@dataclass
class ColdStart:
    metrics: dict[str, dict[str, float]]
    n_test_users: int


def evaluate_cold_start(
    data: Interactions,
    params: TrainingParams,
    *,
    max_users: int,
    share: float = 0.2,
    centroids: bool = False,
    centroid_min_customers: int | None = None,
) -> ColdStart:
    """How well a *new* customer's first order is ranked from what serving knows about them.

    A seeded ``share`` of customers (at most ``max_users``) is removed from the fit
    altogether; each one's first order is then ranked by:

    - ``model``: the user-feature path of serving: the mean embedding of their country and
      of the channel of that order (``LoadedModel.feature_vector``), or the channel's popular
      products when the model knows neither (always without user features: serving then
      uses the country centroid below, ``CRM_RECS_COUNTRY_CENTROIDS``);
    - ``popularity``: the popular products of that channel (the fallback serving uses
      for a customer nothing is known about);
    - ``country_popularity``: popular among the training customers of the same country, a
      non-model reference that user features should at least match;
    - ``country_centroid`` (with ``centroids``): the mean vector of the trained customers of
      the same country (``centroids.country_centroids``), what serving does for a customer
      without purchases when the model has no user features; countries with fewer than
      ``centroid_min_customers`` trained customers (default
      ``CRM_RECS_COUNTRY_CENTROID_MIN_CUSTOMERS``) get the channel's popular products, as
      served.

    Unlike the last-order holdout this is not a time split (cold customers are taken from the
    whole period), so compare its figures with each other, not with the holdout's."""
    n = data.n_users
    empty = ColdStart(metrics={}, n_test_users=0)
    if n < 2 or not data.n_purchases:
        return empty
    rng = np.random.default_rng(params.seed)
    n_cold = max(1, min(max_users, int(n * share)))
    cold = np.sort(rng.choice(n, size=n_cold, replace=False)).astype(np.int32)
    is_cold = np.zeros(n, dtype=bool)
    is_cold[cold] = True
    train_mask = ~is_cold[data.users]
    # First order of every customer (earliest paid_at, then lowest order pk).
    key = np.lexsort((data.orders, data.paid_at, data.users))
    users_sorted = data.users[key]
    first_pos = np.r_[0, np.nonzero(np.diff(users_sorted))[0] + 1]
    first_order = np.full(n, -1, dtype=np.int64)
    first_order[users_sorted[first_pos]] = data.orders[key][first_pos]
    first_channel = np.zeros(n, dtype=np.int32)
    first_channel[users_sorted[first_pos]] = data.channels[key][first_pos]
    in_first = is_cold[data.users] & (data.orders == first_order[data.users])
    truth = sp.csr_matrix(
        (np.ones(int(in_first.sum()), np.float32), (data.users[in_first], data.items[in_first])),
        shape=(n, data.n_items),
    )
    truth.sum_duplicates()
    test_items = [truth.indices[truth.indptr[u] : truth.indptr[u + 1]] for u in cold]

    weights = data.weights(params.half_life_days)

    def popularity(mask: np.ndarray) -> np.ndarray:
        counts = np.bincount(data.items[mask], weights=weights[mask], minlength=data.n_items)
        return counts.astype(np.float32)

    by_channel = np.stack(
        [popularity(train_mask & (data.channels == c)) for c in range(len(data.channel_ids))]
    )
    countries = data.user_countries or [""] * n
    country_of = np.array(countries, dtype=object)
    by_country = {
        c: popularity(train_mask & (country_of[data.users] == c)) for c in set(countries) if c
    }
    overall = popularity(train_mask)

    def channel_scorer(users: np.ndarray) -> np.ndarray:
        return by_channel[first_channel[users]]

    def country_scorer(users: np.ndarray) -> np.ndarray:
        return np.stack([by_country.get(countries[u], overall) for u in users])

    names = user_feature_names(data, params)
    model_scorer = channel_scorer
    reps = None
    if names or centroids:
        fit_on = data.training_matrix(
            train_mask,
            half_life_days=params.half_life_days,
            event_mask=None if not data.n_events else ~is_cold[data.events.users],  # type: ignore[union-attr]
        )
        reps = fit(
            fit_on,
            item_features(data, params),
            params,
            user_features=user_features(data, params, train_mask),
        )
    if names and reps is not None:
        index = {name: i for i, name in enumerate(names)}
        feature_factors = reps.user_feature_factors
        assert feature_factors is not None
        item_factors, item_biases = reps.item_factors, reps.item_biases

        def model_scorer(users: np.ndarray) -> np.ndarray:
            scores = channel_scorer(users).copy()
            for row, u in enumerate(users):
                known = [
                    index[name]
                    for name in (
                        channel_feature(data.channel_ids[first_channel[u]]),
                        country_feature(countries[u]) if countries[u] else "",
                    )
                    if name in index
                ]
                if known:
                    vector = feature_factors[known].mean(axis=0)
                    scores[row] = item_factors @ vector + item_biases
            return scores

    scorers = {
        "model": model_scorer,
        "popularity": channel_scorer,
        "country_popularity": country_scorer,
    }
    if centroids and reps is not None:
        minimum = (
            crm_settings.RECS_COUNTRY_CENTROID_MIN_CUSTOMERS
            if centroid_min_customers is None
            else centroid_min_customers
        )
        scorers["country_centroid"] = _centroid_scorer(
            reps, countries, np.unique(data.users[train_mask]), channel_scorer, minimum
        )
    metrics = {
        name: evaluation.ranking_metrics(scorer, cold, test_items, data.n_items, k=K)
        for name, scorer in scorers.items()
    }
    return ColdStart(metrics=metrics, n_test_users=len(cold))


def _centroid_scorer(
    reps: Representations,
    countries: list[str],
    trained: np.ndarray,
    fallback: evaluation.Scorer,
    min_customers: int,
) -> evaluation.Scorer:
    """Serving's cold start without user features: the country's centroid when it is over
    at least ``min_customers`` trained customers, else ``fallback`` (popular)."""
    found = country_centroids(reps.user_factors, countries, trained)
    vectors = {
        c: found.factors[n]
        for n, c in enumerate(found.countries)
        if found.customers[n] >= min_customers
    }

    def score(users: np.ndarray) -> np.ndarray:
        scores = fallback(users).copy()
        for row, u in enumerate(users):
            vector = vectors.get(countries[u])
            if vector is not None:
                scores[row] = reps.item_factors @ vector + reps.item_biases
        return scores

    return score


def should_promote(model_ndcg: float, baseline_ndcg: float, margin: float) -> bool:
    """Strictly positive and at least ``(1 + margin)`` times the best baseline."""
    return model_ndcg > 0 and model_ndcg >= baseline_ndcg * (1.0 + margin)


def train_model(*, trigger: str = "manual", params: TrainingParams | None = None) -> ModelRun:
    """Run one training cycle and return its ``ModelRun``.

    Raises ``RecommendationError(TRAINING_IN_PROGRESS)`` when another run is under way (a
    run older than two hours is considered dead). Any other failure marks the run FAILED,
    keeps the previously serving run untouched, and re-raises for Celery to log.
    """
    params = params or params_from_settings()
    with transaction.atomic():
        # Serialise concurrent starts (beat + "after N orders" + a manual command).
        list(ModelRun.objects.select_for_update().filter(status=RunStatus.RUNNING))
        cutoff = timezone.now() - STALE_RUN_AFTER
        ModelRun.objects.filter(status=RunStatus.RUNNING, started_at__lt=cutoff).update(
            status=RunStatus.FAILED, error="abandoned (worker died?)"
        )
        if ModelRun.objects.filter(status=RunStatus.RUNNING).exists():
            raise RecommendationError(
                RecommendationErrorCode.TRAINING_IN_PROGRESS, "A training run is in progress."
            )
        run = ModelRun.objects.create(
            trigger=trigger, params=params.as_dict(), algorithm=f"lightfm-{params.loss}"
        )
    started = time.perf_counter()
    try:
        _train(run, params, started)
    except Exception as exc:
        run.status = RunStatus.FAILED
        run.error = repr(exc)[:2000]
        run.finished_at = timezone.now()
        run.duration_seconds = time.perf_counter() - started
        run.save()
        raise
    return run


def _train(run: ModelRun, params: TrainingParams, started: float) -> None:
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    paid_orders = Order.objects.filter(paid_at__isnull=False).exclude(status__in=NON_SALE_STATUSES)
    run.paid_orders_seen = paid_orders.count()
    data = extract_interactions(event_weights=dict(params.event_weights))
    timings["extract"] = time.perf_counter() - mark
    run.n_users, run.n_items, run.n_interactions = data.n_users, data.n_items, data.n_purchases
    run.n_events = data.n_events
    run.n_item_features = item_features(data, params).shape[1]
    run.n_user_features = len(user_feature_names(data, params))
    run.data_until = datetime.fromtimestamp(data.until, tz=UTC) if data.n_purchases else None

    mark = time.perf_counter()
    save_rankings(data, params)
    timings["rankings"] = time.perf_counter() - mark

    if data.n_purchases < crm_settings.RECS_MIN_INTERACTIONS or data.n_users < 2:
        run.decision = RunDecision.INSUFFICIENT_DATA
        run.reason = (
            f"{data.n_purchases} purchases (< {crm_settings.RECS_MIN_INTERACTIONS}): "
            "popular products serve."
        )
        _deactivate_all()
        _finish(run, timings, started)
        return

    mark = time.perf_counter()
    result = evaluate(data, params, max_users=crm_settings.RECS_EVAL_MAX_USERS)
    timings["evaluate"] = time.perf_counter() - mark
    timings["epoch_seconds_mean"] = float(np.mean(result.representations.epoch_seconds))
    run.metrics = result.metrics
    run.n_test_users = result.n_test_users
    baseline, baseline_ndcg = result.best_baseline
    model_ndcg = result.metrics["model"]["ndcg"]
    margin = crm_settings.RECS_PROMOTION_MARGIN
    if not should_promote(model_ndcg, baseline_ndcg, margin):
        run.decision = RunDecision.FALLBACK
        run.reason = (
            f"NDCG@10 {model_ndcg:.4f} < {1 + margin:.2f} x {baseline} {baseline_ndcg:.4f}: "
            "popular products serve."
        )
        _deactivate_all()
        _finish(run, timings, started)
        return

    mark = time.perf_counter()
    # ``full`` (purchases only) is the served history: a viewed product is never "bought
    # before"; the refit sees the events too, all of them.
    full = data.matrix(half_life_days=params.half_life_days)
    fit_on = data.training_matrix(half_life_days=params.half_life_days)
    features = item_features(data, params)
    # All purchases now: a channel first used in a held-out order counts for the refit.
    users = user_features(data, params)
    if not crm_settings.RECS_REFIT_ON_FULL:
        reps = result.representations
    elif params.refit_epochs > 0:
        # Continue the evaluated model with the held-out orders added: a few epochs instead
        # of a second full training.
        reps = fit(
            fit_on,
            features,
            params,
            warm_start=result.representations,
            epochs=params.refit_epochs,
            user_features=users,
        )
    else:
        reps = fit(fit_on, features, params, user_features=users)
    timings["refit"] = time.perf_counter() - mark
    run.decision = RunDecision.PROMOTED
    run.reason = f"NDCG@10 {model_ndcg:.4f} >= {1 + margin:.2f} x {baseline} {baseline_ndcg:.4f}."
    mark = time.perf_counter()
    with transaction.atomic():
        save_artefact(run, data, reps, full, params.repeat_weight, user_feature_names(data, params))
        _deactivate_all()
        run.is_active = True
        run.save(update_fields=["is_active"])
    timings["save"] = time.perf_counter() - mark
    mark = time.perf_counter()
    precompute(run, data, reps, full, params.repeat_weight)
    timings["precompute"] = time.perf_counter() - mark
    _finish(run, timings, started)


def _finish(run: ModelRun, timings: dict[str, float], started: float) -> None:
    run.status = RunStatus.SUCCEEDED
    run.timings = {k: round(v, 4) for k, v in timings.items()}
    run.duration_seconds = time.perf_counter() - started
    run.finished_at = timezone.now()
    run.save()
    # This process sees the new run at once; other workers within their check interval.
    from saleor_crm_plugin.recommendations.serving import clear_caches

    clear_caches()
    logger.info("recommendation run %s: %s", run.pk, run.reason)


def _deactivate_all() -> None:
    ModelRun.objects.filter(is_active=True).update(is_active=False)


def save_artefact(
    run: ModelRun,
    data: Interactions,
    reps: Representations,
    history: sp.csr_matrix,
    repeat_weight: float,
    feature_names: list[str] | None = None,
) -> ModelArtefact:
    """``feature_names`` name the rows of ``reps.user_feature_factors`` (the user-feature
    columns of the fit, as ``Interactions.user_feature_names``). The country centroids of
    the trained customers are stored too (cold start without user features)."""
    history = history.tocsr()
    centroids = country_centroids(reps.user_factors, data.user_countries)
    feature_names = list(feature_names or [])
    dim = reps.item_factors.shape[1]
    feature_factors = reps.user_feature_factors
    feature_biases = reps.user_feature_biases
    if feature_factors is None or feature_biases is None:
        feature_factors, feature_biases = np.zeros((0, dim), np.float32), np.zeros(0, np.float32)
    if len(feature_names) != len(feature_factors):
        raise ValueError(
            f"{len(feature_names)} user-feature names for {len(feature_factors)} embeddings"
        )
    return ModelArtefact.objects.create(
        run=run,
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        components=reps.item_factors.shape[1],
        user_factors=reps.user_factors.astype(np.float32).tobytes(),
        user_biases=reps.user_biases.astype(np.float32).tobytes(),
        item_factors=reps.item_factors.astype(np.float32).tobytes(),
        item_biases=reps.item_biases.astype(np.float32).tobytes(),
        history_indptr=history.indptr.astype(np.int32).tobytes(),
        history_indices=history.indices.astype(np.int32).tobytes(),
        history_data=history.data.astype(np.float32).tobytes(),
        repeat_weight=repeat_weight,
        user_feature_names=feature_names,
        user_feature_factors=feature_factors.astype(np.float32).tobytes(),
        user_feature_biases=feature_biases.astype(np.float32).tobytes(),
        centroid_countries=centroids.countries,
        centroid_customers=centroids.customers,
        centroid_factors=centroids.factors.astype(np.float32).tobytes(),
    )


def precompute(
    run: ModelRun,
    data: Interactions,
    reps: Representations,
    history: sp.csr_matrix,
    repeat_weight: float,
    *,
    batch_size: int = 2048,
) -> int:
    """Top candidates for customers who bought in the last ``RECS_ACTIVE_DAYS`` (relative
    to the newest purchase), by batched matrix products; replaces older runs' lists."""
    k = min(crm_settings.RECS_PRECOMPUTE_K, data.n_items)
    since = data.until - crm_settings.RECS_ACTIVE_DAYS * 86400.0
    active = np.unique(data.users[data.paid_at >= since])
    PrecomputedRecommendation.objects.exclude(run=run).delete()
    created = 0
    for start in range(0, len(active), batch_size):
        users = active[start : start + batch_size]
        raw = reps.user_factors[users] @ reps.item_factors.T + reps.item_biases
        scores = scoring.hybrid_scores(raw, history[users], repeat_weight)
        ranked = evaluation.top_k(scores, k)
        rows = [
            PrecomputedRecommendation(
                run=run,
                customer_id=data.user_ids[u],
                product_ids=[data.item_ids[i] for i in row],
                scores=[round(float(s), 5) for s in scores[n, row]],
            )
            for n, (u, row) in enumerate(zip(users, ranked, strict=True))
        ]
        PrecomputedRecommendation.objects.bulk_create(rows, batch_size=1000)
        created += len(rows)
    return created


def save_rankings(data: Interactions, params: TrainingParams) -> None:
    """Popular and trending per channel (and across channels), and bought-together pairs."""
    scopes: list[tuple[str, np.ndarray | None]] = [("", None)]
    scopes += [(cid, data.channels == n) for n, cid in enumerate(data.channel_ids)]
    pairs = rankings.associations(data, min_support=crm_settings.RECS_ASSOCIATION_MIN_SUPPORT)
    with transaction.atomic():
        for channel_id, mask in scopes:
            for kind, scores in (
                (RankingKind.POPULAR, rankings.popular(data, params.half_life_days, mask)),
                (
                    RankingKind.TRENDING,
                    rankings.trending(data, crm_settings.RECS_TRENDING_DAYS, mask),
                ),
            ):
                product_ids, values = rankings.top(scores, data.item_ids)
                ChannelRanking.objects.update_or_create(
                    channel_id=channel_id,
                    kind=kind,
                    defaults={"product_ids": product_ids, "scores": values},
                )
        ProductAssociation.objects.all().delete()
        ProductAssociation.objects.bulk_create(
            [
                ProductAssociation(
                    product_id=p.product_id,
                    other_product_id=p.other_product_id,
                    support=p.support,
                    confidence=p.confidence,
                    lift=p.lift,
                )
                for p in pairs
            ],
            batch_size=2000,
        )


def orders_since_last_run() -> int:
    """Paid orders that arrived since the newest successful run counted them."""
    last = (
        ModelRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-started_at", "-pk").first()
    )
    paid = Order.objects.filter(paid_at__isnull=False).exclude(status__in=NON_SALE_STATUSES)
    return paid.count() - (last.paid_orders_seen if last else 0)


def retrain_due() -> bool:
    threshold = crm_settings.RECS_RETRAIN_AFTER_ORDERS
    return threshold > 0 and orders_since_last_run() >= threshold
