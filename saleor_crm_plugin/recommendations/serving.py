"""Answering "what should this shopper see?" in a few milliseconds.

The active run's arrays are loaded once per process (``numpy.frombuffer`` over the stored
bytes: no unpickling, no LightFM import) and re-checked against the database at most every
``RECS_MODEL_CHECK_SECONDS``. Personal lists come from the precomputed table when present,
otherwise from one matrix-vector product over the catalogue; a customer the model never saw
is folded in from their purchases or, without any, scored from their country: from the
embeddings of their country and the channel they shop in when the run has user features,
otherwise from the mean vector of the trained customers of their country (the country
centroid stored with the artefact); anonymous shoppers and customers nothing is known about
get the channel's popular and trending products. Filters (blocklist, availability,
optionally already-purchased) and boosts apply at read time, so merchant changes take effect
at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import scipy.sparse as sp
from django.db.models import Q

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.recommendations import scoring
from saleor_crm_plugin.recommendations.centroids import CountryCentroids, country_centroids
from saleor_crm_plugin.recommendations.data import channel_feature, country_feature, paid_lines
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.recommendations.models import (
    ChannelRanking,
    ModelArtefact,
    ModelRun,
    PrecomputedRecommendation,
    ProductAssociation,
    ProductAvailability,
    ProductRule,
    RankingKind,
)
from saleor_crm_plugin.recommendations.training import Representations

MAX_FIRST = 100


class Reason(StrEnum):
    PERSONAL = "personal"  # the model, explained by the closest past purchase
    BUY_AGAIN = "buy_again"
    POPULAR = "popular"
    TRENDING = "trending"
    SIMILAR = "similar"
    BOUGHT_TOGETHER = "bought_together"
    # A customer the model has no purchases of, scored from their country / channel.
    SIMILAR_SHOPPERS = "similar_shoppers"


@dataclass(frozen=True)
class Recommendation:
    product_id: str
    score: float
    reason: Reason
    explanation: str = ""
    # The product that explains the recommendation ("because you bought X").
    because_of: str = ""
    run_id: int | None = None


@dataclass
class LoadedModel:
    run_id: int
    user_index: dict[int, int]
    item_ids: list[str]
    item_index: dict[str, int]
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_biases: np.ndarray
    item_unit: np.ndarray  # L2-normalised item factors, for cosine similarity
    history: sp.csr_matrix
    repeat_weight: float
    # User-feature column name ("channel:<id>", "country:<code>") -> row of
    # ``user_feature_factors``; empty when the run had no user features.
    user_feature_index: dict[str, int] = field(default_factory=dict)
    user_feature_factors: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32)
    )
    # Country code -> row of ``centroid_factors`` (the mean vector of that country's trained
    # customers) and how many customers each is over; empty for runs stored without them.
    centroid_index: dict[str, int] = field(default_factory=dict)
    centroid_customers: list[int] = field(default_factory=list)
    centroid_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    @classmethod
    def from_representations(
        cls,
        run_id: int,
        user_ids: list[int],
        item_ids: list[str],
        reps: Representations,
        history: sp.csr_matrix,
        repeat_weight: float,
        user_feature_names: list[str] | None = None,
        user_countries: list[str] | None = None,
    ) -> LoadedModel:
        """An in-memory model that was never stored (the demo's preview of a model that did
        not pass the promotion gate); ``user_countries`` (``Interactions.user_countries``)
        gives it the country centroids a stored run has."""
        norms = np.linalg.norm(reps.item_factors, axis=1, keepdims=True)
        names = list(user_feature_names or [])
        feature_factors = reps.user_feature_factors
        if not names or feature_factors is None:
            names, feature_factors = [], np.zeros((0, reps.item_factors.shape[1]), np.float32)
        return cls(
            run_id=run_id,
            user_index={pk: n for n, pk in enumerate(user_ids)},
            item_ids=list(item_ids),
            item_index={pid: n for n, pid in enumerate(item_ids)},
            user_factors=reps.user_factors,
            item_factors=reps.item_factors,
            item_biases=reps.item_biases,
            item_unit=(reps.item_factors / np.where(norms == 0, 1, norms)).astype(np.float32),
            history=history.tocsr(),
            repeat_weight=repeat_weight,
            user_feature_index={name: n for n, name in enumerate(names)},
            user_feature_factors=feature_factors,
            **_centroid_fields(country_centroids(reps.user_factors, user_countries or [])),
        )

    @classmethod
    def from_artefact(cls, artefact: ModelArtefact) -> LoadedModel:
        n_users, n_items, dim = len(artefact.user_ids), len(artefact.item_ids), artefact.components

        def arr(raw: bytes | memoryview, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
            return np.frombuffer(bytes(raw), dtype=dtype).reshape(shape)

        item_factors = arr(artefact.item_factors, np.float32, (n_items, dim))
        norms = np.linalg.norm(item_factors, axis=1, keepdims=True)
        indices = np.frombuffer(bytes(artefact.history_indices), dtype=np.int32)
        history = sp.csr_matrix(
            (
                np.frombuffer(bytes(artefact.history_data), dtype=np.float32),
                indices,
                np.frombuffer(bytes(artefact.history_indptr), dtype=np.int32),
            ),
            shape=(n_users, n_items),
        )
        return cls(
            run_id=artefact.run_id,
            user_index={pk: n for n, pk in enumerate(artefact.user_ids)},
            item_ids=list(artefact.item_ids),
            item_index={pid: n for n, pid in enumerate(artefact.item_ids)},
            user_factors=arr(artefact.user_factors, np.float32, (n_users, dim)),
            item_factors=item_factors,
            item_biases=arr(artefact.item_biases, np.float32, (n_items,)),
            item_unit=(item_factors / np.where(norms == 0, 1, norms)).astype(np.float32),
            history=history,
            repeat_weight=artefact.repeat_weight,
            user_feature_index={name: n for n, name in enumerate(artefact.user_feature_names)},
            user_feature_factors=arr(
                artefact.user_feature_factors or b"",
                np.float32,
                (len(artefact.user_feature_names), dim),
            ),
            **_centroid_fields(
                CountryCentroids(
                    countries=list(artefact.centroid_countries),
                    customers=[int(n) for n in artefact.centroid_customers],
                    factors=arr(
                        artefact.centroid_factors or b"",
                        np.float32,
                        (len(artefact.centroid_countries), dim),
                    ),
                )
            ),
        )

    def history_row(self, row: int) -> np.ndarray:
        """``history[row].toarray()[0]`` without scipy's indexing machinery (validation, a
        one-row matrix built and densified: most of a recommendation's numpy time). Read
        straight from the CSR arrays; duplicate entries, which ``toarray`` sums, are summed
        in the same order by ``np.add.at`` when the matrix is not canonical."""
        history = self.history
        start, end = history.indptr[row], history.indptr[row + 1]
        dense = np.zeros(history.shape[1], dtype=history.dtype)
        if history.has_canonical_format:
            dense[history.indices[start:end]] = history.data[start:end]
        else:
            np.add.at(dense, history.indices[start:end], history.data[start:end])
        return dense

    def score_user_vector(self, vector: np.ndarray, history_row: np.ndarray | None) -> np.ndarray:
        """Scores for every product (one matrix-vector product, ~1 ms for 10k products)."""
        raw = (self.item_factors @ vector + self.item_biases)[None, :]
        history = history_row[None, :] if history_row is not None else None
        return scoring.hybrid_scores(raw, history, self.repeat_weight)[0]

    def feature_vector(self, names: list[str]) -> np.ndarray | None:
        """A cold customer's vector: the mean of the embeddings of their user features that
        the model knows (the row normalisation of training, without the identity column),
        or None when it knows none of them."""
        rows = [self.user_feature_index[n] for n in names if n in self.user_feature_index]
        if not rows:
            return None
        return self.user_feature_factors[rows].mean(axis=0).astype(np.float32)

    def country_centroid(self, country_code: str, min_customers: int) -> np.ndarray | None:
        """The mean vector of the trained customers of ``country_code``, or None when the
        run has none for it or it is over fewer than ``min_customers`` customers."""
        row = self.centroid_index.get(country_code) if country_code else None
        if row is None or self.centroid_customers[row] < min_customers:
            return None
        return self.centroid_factors[row]


def _centroid_fields(centroids: CountryCentroids) -> dict[str, object]:
    return {
        "centroid_index": {code: n for n, code in enumerate(centroids.countries)},
        "centroid_customers": list(centroids.customers),
        "centroid_factors": centroids.factors,
    }


class _ModelCache:
    """Per-process cache of the active model; thread-safe for threaded WSGI servers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._active_id: int | None = None
        self._checked_at = -1e18

    def get(self) -> LoadedModel | None:
        now = time.monotonic()
        if now - self._checked_at < crm_settings.RECS_MODEL_CHECK_SECONDS:
            return self._model
        with self._lock:
            active_id = ModelRun.objects.serving().values_list("pk", flat=True).first()
            if active_id != self._active_id:
                artefact = ModelArtefact.objects.filter(run_id=active_id).first()
                self._model = LoadedModel.from_artefact(artefact) if artefact else None
                self._active_id = active_id
            self._checked_at = now
            return self._model

    def clear(self) -> None:
        with self._lock:
            self._model, self._active_id, self._checked_at = None, None, -1e18


model_cache = _ModelCache()


# -- filters and boosts ----------------------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    excluded: frozenset[str]
    boosts: dict[str, float]

    def apply(
        self, candidates: list[tuple[str, float]], also_excluded: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """Drop excluded products; multiply positive scores by the boost (divide negative
        ones, so a boost always moves a product up), then re-sort."""
        result = []
        for product_id, score in candidates:
            if product_id in self.excluded or (also_excluded and product_id in also_excluded):
                continue
            boost = self.boosts.get(product_id, 1.0)
            if boost != 1.0 and boost > 0:
                score = score * boost if score >= 0 else score / boost
            result.append((product_id, score))
        result.sort(key=lambda c: -c[1])
        return result


class _TTLCache:
    """Tiny per-process cache: merchant rules and rankings change rarely, and reading them on
    every request would cost more than the scoring itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[object, tuple[float, object]] = {}

    def get(self, key: object, ttl: float, load: Callable[[], object]) -> object:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now < entry[0]:
            return entry[1]
        value = load()
        if ttl > 0:
            with self._lock:
                self._entries[key] = (now + ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _TTLCache()


def clear_caches() -> None:
    """Forget the cached model, rules and rankings (tests, and after merchant changes when an
    immediate effect is wanted in this process)."""
    model_cache.clear()
    _cache.clear()


def load_rules(channel_id: str) -> Rules:
    """Blocklist, unavailable-in-channel products and boosts, cached per process for
    ``RECS_RULES_CACHE_SECONDS``."""

    def load() -> Rules:
        excluded: set[str] = set()
        if channel_id:
            excluded.update(
                ProductAvailability.objects.filter(
                    channel_id=channel_id, is_available=False
                ).values_list("product_id", flat=True)
            )
        boosts: dict[str, float] = {}
        rules = ProductRule.objects.filter(Q(blocked=True) | ~Q(boost=1.0))
        for product_id, blocked, boost in rules.values_list("product_id", "blocked", "boost"):
            if blocked:
                excluded.add(product_id)
            else:
                boosts[product_id] = boost
        return Rules(excluded=frozenset(excluded), boosts=boosts)

    return _cache.get(("rules", channel_id), crm_settings.RECS_RULES_CACHE_SECONDS, load)  # type: ignore[return-value]


def _validate_first(first: int) -> int:
    if first < 1 or first > MAX_FIRST:
        raise RecommendationError(
            RecommendationErrorCode.INVALID,
            f"first must be between 1 and {MAX_FIRST}.",
            field="first",
        )
    return first


# -- personal ------------------------------------------------------------------------------
# What ``recommend`` reads of its ``customer`` besides the primary key, so a caller on the
# request path loads only that (anything else would be loaded on access: a query, no error).
CUSTOMER_READS = frozenset({"country_code"})


def recommend(
    *, customer: Customer | None, channel_id: str = "", first: int = 10
) -> list[Recommendation]:
    """Recommendations for a signed-in customer (``customer``) or an anonymous shopper.

    Order of preference: the promoted model (precomputed list, else on-the-fly scoring,
    folding in purchases made after training, or, for a customer without purchases, the
    embeddings of their country and channel when the model has user features, else their
    country's centroid), then
    popular/trending in the channel to fill up. Raises ``RecommendationError(INVALID,
    field="first")`` for an out-of-range ``first``.
    """
    first = _validate_first(first)
    if not crm_settings.RECS_ENABLED:
        return []
    model = model_cache.get()
    results: list[Recommendation] = []
    if customer is not None and model is not None:
        results = _personal(model, customer, channel_id, first)
    seen = {r.product_id for r in results}
    if len(results) < first:
        purchased = (
            _purchased(customer) if customer and crm_settings.RECS_EXCLUDE_PURCHASED else set()
        )
        for rec in popular(channel_id=channel_id, first=first + len(seen) + len(purchased)):
            if rec.product_id not in seen and rec.product_id not in purchased:
                results.append(rec)
                seen.add(rec.product_id)
            if len(results) >= first:
                break
    return results[:first]


def _purchased(customer: Customer) -> set[str]:
    return set(paid_lines().filter(order__customer=customer).values_list("product_id", flat=True))


def _personal(
    model: LoadedModel, customer: Customer, channel_id: str, first: int
) -> list[Recommendation]:
    row = model.user_index.get(customer.pk)
    history = _customer_history(model, customer, row)
    rules = load_rules(channel_id)
    purchased: set[str] = set()
    if crm_settings.RECS_EXCLUDE_PURCHASED and history is not None:
        purchased = {model.item_ids[i] for i in np.nonzero(history)[0]}
    ranked: list[tuple[str, float]] = []
    cold, cold_text = False, ""
    if row is not None and crm_settings.RECS_SERVE_PRECOMPUTED:
        pre = (
            PrecomputedRecommendation.objects.filter(run_id=model.run_id, customer=customer)
            .values_list("product_ids", "scores")
            .first()
        )
        if pre is not None:
            ranked = rules.apply(list(zip(pre[0], pre[1], strict=True)), purchased)[:first]
    if len(ranked) < first:
        # No precomputed list, or the filters emptied it: score the whole catalogue.
        vector = _user_vector(model, row, history)
        if vector is None:
            vector, cold_text = _cold_vector(model, customer, channel_id)
            if vector is None:
                return []
            cold = True
        scores = model.score_user_vector(vector, history)
        # Enough candidates to survive the filters (purchases rank high when they are
        # excluded); argpartition keeps this O(n_items).
        n = max(first * 5, crm_settings.RECS_PRECOMPUTE_K) + len(purchased)
        n = min(len(scores), n + min(len(rules.excluded), first * 5))
        best = np.argpartition(-scores, n - 1)[:n]
        candidates = [(model.item_ids[i], float(scores[i])) for i in best]
        ranked = rules.apply(candidates, purchased)[:first]
    if cold:
        return [
            Recommendation(p, s, Reason.SIMILAR_SHOPPERS, cold_text, "", model.run_id)
            for p, s in ranked
        ]
    # What the customer bought (and those products' unit vectors), found once for the whole
    # list rather than once per product: the same arrays, so the same similarities.
    bought = np.nonzero(history)[0] if history is not None else None
    bought_unit = model.item_unit[bought] if bought is not None and len(bought) else None
    return [
        _explain(model, product_id, score, history, bought, bought_unit)
        for product_id, score in ranked
    ]


IN_YOUR_COUNTRY = "Popular with shoppers in your country"


def _cold_vector(
    model: LoadedModel, customer: Customer, channel_id: str
) -> tuple[np.ndarray | None, str]:
    """A customer without purchases: the embeddings of their user features when the run
    has them (the path it was trained for), otherwise their country's centroid
    (``CRM_RECS_COUNTRY_CENTROIDS``); the explanation goes with it. (None, "") = popular."""
    country = customer.country_code
    if model.user_feature_index:
        vector = model.feature_vector(cold_start_features(customer, channel_id))
        by_country = bool(country) and country_feature(country) in model.user_feature_index
        return vector, IN_YOUR_COUNTRY if by_country else "Popular with shoppers like you"
    if country and crm_settings.RECS_COUNTRY_CENTROIDS:
        vector = model.country_centroid(country, crm_settings.RECS_COUNTRY_CENTROID_MIN_CUSTOMERS)
        return vector, IN_YOUR_COUNTRY
    return None, ""


def cold_start_features(customer: Customer, channel_id: str) -> list[str]:
    """What serving knows about a customer without purchases: their country and the channel
    they are shopping in now (training counts the channels a customer bought in)."""
    names = []
    if channel_id:
        names.append(channel_feature(channel_id))
    if customer.country_code:
        names.append(country_feature(customer.country_code))
    return names


def _customer_history(model: LoadedModel, customer: Customer, row: int | None) -> np.ndarray | None:
    """The customer's recency-weighted purchases over the model's products: from the
    artefact when the customer was trained on, otherwise read from the orders (fold-in)."""
    if row is not None:
        return model.history_row(row)
    lines = paid_lines().filter(order__customer=customer).values_list("product_id", "quantity")
    history = np.zeros(len(model.item_ids), dtype=np.float32)
    found = False
    for product_id, quantity in lines:
        col = model.item_index.get(product_id)
        if col is not None:
            history[col] += np.log1p(quantity)
            found = True
    return history if found else None


def _user_vector(
    model: LoadedModel, row: int | None, history: np.ndarray | None
) -> np.ndarray | None:
    """A trained customer's factors, or (new customer) the weighted mean of the factors of
    the products they bought: a cheap fold-in that needs no retraining."""
    if row is not None:
        return model.user_factors[row]
    if history is None or not history.any():
        return None
    weights = history / history.sum()
    return (weights @ model.item_factors).astype(np.float32)


def _explain(
    model: LoadedModel,
    product_id: str,
    score: float,
    history: np.ndarray | None,
    bought: np.ndarray | None = None,
    bought_unit: np.ndarray | None = None,
) -> Recommendation:
    col = model.item_index.get(product_id)
    if history is not None and col is not None and history[col] > 0:
        return Recommendation(
            product_id, score, Reason.BUY_AGAIN, "You bought this before", product_id, model.run_id
        )
    because = ""
    if history is not None and col is not None:
        if bought is None:
            bought = np.nonzero(history)[0]
        if len(bought):
            if bought_unit is None:
                bought_unit = model.item_unit[bought]
            similarity = bought_unit @ model.item_unit[col]
            because = model.item_ids[int(bought[int(np.argmax(similarity))])]
    explanation = "Because you bought a related product" if because else "Picked for you"
    return Recommendation(product_id, score, Reason.PERSONAL, explanation, because, model.run_id)


# -- anonymous and fallbacks -----------------------------------------------------------------
def popular(
    *, channel_id: str = "", first: int = 10, kind: RankingKind = RankingKind.POPULAR
) -> list[Recommendation]:
    """The channel's popular (or trending) products, falling back to all channels."""

    def load() -> list[tuple[str, float]]:
        ranking = (
            ChannelRanking.objects.filter(channel_id=channel_id, kind=kind)
            .values_list("product_ids", "scores")
            .first()
        )
        if (ranking is None or not ranking[0]) and channel_id:
            ranking = (
                ChannelRanking.objects.filter(channel_id="", kind=kind)
                .values_list("product_ids", "scores")
                .first()
            )
        return list(zip(ranking[0], ranking[1], strict=True)) if ranking else []

    # Rankings change only when a run finishes: cache them like the model.
    candidates: list[tuple[str, float]] = _cache.get(  # type: ignore[assignment]
        ("ranking", channel_id, kind), crm_settings.RECS_MODEL_CHECK_SECONDS, load
    )
    rules = load_rules(channel_id)
    reason = Reason.TRENDING if kind == RankingKind.TRENDING else Reason.POPULAR
    text = "Trending now" if reason == Reason.TRENDING else "Popular in this shop"
    return [Recommendation(p, s, reason, text) for p, s in rules.apply(candidates)[:first]]


# -- product pages ---------------------------------------------------------------------------
def similar_products(
    product_id: str, *, channel_id: str = "", first: int = 10
) -> list[Recommendation]:
    """Nearest products by cosine similarity of the active model's item embeddings; without
    a model (or for a product it has not seen) the bought-together list stands in."""
    first = _validate_first(first)
    if not product_id:
        raise RecommendationError(
            RecommendationErrorCode.REQUIRED, "productId is required.", field="product_id"
        )
    if not crm_settings.RECS_ENABLED:
        return []
    model = model_cache.get()
    col = model.item_index.get(product_id) if model else None
    if model is None or col is None:
        return bought_together(product_id, channel_id=channel_id, first=first)
    similarity = model.item_unit @ model.item_unit[col]
    similarity[col] = -np.inf
    n = min(len(similarity) - 1, first * 5)
    if n <= 0:
        return []
    best = np.argpartition(-similarity, n - 1)[:n]
    candidates = [(model.item_ids[i], float(similarity[i])) for i in best]
    rules = load_rules(channel_id)
    return [
        Recommendation(p, s, Reason.SIMILAR, "Similar products", product_id, model.run_id)
        for p, s in rules.apply(candidates)[:first]
    ]


def bought_together(
    product_id: str, *, channel_id: str = "", first: int = 10
) -> list[Recommendation]:
    """Products most often in the same order as ``product_id`` (confidence, then lift)."""
    first = _validate_first(first)
    if not product_id:
        raise RecommendationError(
            RecommendationErrorCode.REQUIRED, "productId is required.", field="product_id"
        )
    if not crm_settings.RECS_ENABLED:
        return []
    pairs = list(
        ProductAssociation.objects.filter(product_id=product_id)
        .order_by("-confidence", "-lift", "other_product_id")
        .values_list("other_product_id", "confidence", "lift", "support")[: first * 3]
    )
    rules = load_rules(channel_id)
    by_id = {p[0]: p for p in pairs}
    ranked = rules.apply([(p[0], p[1]) for p in pairs])[:first]
    return [
        Recommendation(
            other,
            score,
            Reason.BOUGHT_TOGETHER,
            f"Bought together in {by_id[other][3]} orders (lift {by_id[other][2]:.1f})",
            product_id,
        )
        for other, score in ranked
    ]


def personal_preview(
    model: LoadedModel, customer: Customer, first: int = 10
) -> list[Recommendation]:
    """Personal recommendations from a given (possibly unpromoted) model, with filters and
    reasons as served; for previews and reports, never for shoppers."""
    return _personal(model, customer, "", first)
