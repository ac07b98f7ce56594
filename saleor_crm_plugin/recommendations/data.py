"""From the order projection to a sparse customer x product matrix.

Only paid, non-cancelled orders of known (not erased) customers count. Each order line adds
``log1p(net quantity)`` (refunded units removed), decayed by purchase age with a configurable
half-life, so a 48-pack of napkins does not drown everything else and last year's taste
fades. The raw per-line arrays are kept so the holdout split and the popularity rankings can
be computed from the very same data the model sees.

Storefront events (product viewed, added to cart) are an optional, weaker signal: each adds
its kind's configured weight (``CRM_RECS_EVENT_WEIGHTS``, relative to a one-unit purchase),
decayed like purchases. They are kept apart from the purchases (``EventSignals``) because
they only feed the LightFM fit: history, baselines, rankings and the holdout targets stay
purchases only, so a run with events is measured against exactly the same yardstick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import scipy.sparse as sp
from django.db.models import QuerySet

# The storefront event kinds that may feed training. Recommendation impressions and clicks
# are left out on purpose: they mostly echo what the previous model showed (feedback loop).
TRAINING_EVENT_KINDS = ("product_viewed", "added_to_cart")
# What a single-unit purchase weighs (``log1p(1)``); event weights are relative to it, and
# all events of one customer on one product together never weigh more than it.
ONE_PURCHASE = float(np.log1p(1.0))


def channel_feature(channel_id: str) -> str:
    """Name of the user-feature column "bought in this channel" (training and serving)."""
    return f"channel:{channel_id}"


def country_feature(country_code: str) -> str:
    """Name of the user-feature column "lives in this country" (training and serving)."""
    return f"country:{country_code}"


@dataclass
class EventSignals:
    """Per-event arrays, indexed like the purchases (same rows and columns)."""

    users: np.ndarray  # int32 row index per event
    items: np.ndarray  # int32 column index per event
    weights: np.ndarray  # float32 configured weight of the event's kind
    occurred_at: np.ndarray  # float64 epoch seconds per event

    def __len__(self) -> int:
        return len(self.users)


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
    events: EventSignals | None = None  # storefront events, when enabled
    # Product type id of each column ("" when unknown); empty when the rows carried none.
    item_product_types: list[str] = field(default_factory=list)
    # "attribute:value" strings of each column (empty when unknown); empty when none carried.
    item_attributes: list[list[str]] = field(default_factory=list)
    # ISO country code of each row's customer ("" when unknown); empty when none carried.
    user_countries: list[str] = field(default_factory=list)

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

    @property
    def n_events(self) -> int:
        return len(self.events) if self.events is not None else 0

    def event_matrix(
        self, mask: np.ndarray | None = None, *, half_life_days: float
    ) -> sp.csr_matrix:
        """Events per (customer, product): ``weight x one purchase``, decayed from the same
        reference instant as purchases, summed and capped at one purchase, so a customer
        who opens a product page fifty times has not "bought" it fifty times."""
        shape = (self.n_users, self.n_items)
        events = self.events
        if events is None or not len(events):
            return sp.csr_matrix(shape, dtype=np.float32)
        age_days = np.maximum(self.until - events.occurred_at, 0.0) / 86400.0
        decay = np.power(0.5, age_days / half_life_days) if half_life_days > 0 else 1.0
        weights = (events.weights * ONE_PURCHASE * decay).astype(np.float32)
        users, items = events.users, events.items
        if mask is not None:
            users, items, weights = users[mask], items[mask], weights[mask]
        matrix = sp.csr_matrix((weights, (users, items)), shape=shape, dtype=np.float32)
        matrix.sum_duplicates()
        np.minimum(matrix.data, np.float32(ONE_PURCHASE), out=matrix.data)
        return matrix

    def training_matrix(
        self,
        mask: np.ndarray | None = None,
        *,
        half_life_days: float,
        event_mask: np.ndarray | None = None,
    ) -> sp.csr_matrix:
        """What LightFM is fitted on: the purchase matrix plus the events. Without events
        this *is* ``matrix()`` (same object, same bits): turning the feature off changes
        nothing."""
        purchases = self.matrix(mask, half_life_days=half_life_days)
        if not self.n_events:
            return purchases
        events = self.event_matrix(event_mask, half_life_days=half_life_days)
        return (purchases + events).tocsr().astype(np.float32)

    def event_mask(self, holdout: Holdout) -> np.ndarray:
        """Events the holdout fit may see: a test customer's events only from before their
        last training order, so the views that led to the held-out order cannot give its
        answer away (serving, after the refit, uses them all)."""
        if not self.n_events:
            return np.ones(0, dtype=bool)
        assert self.events is not None
        cutoff = holdout.event_cutoff
        if cutoff is None:
            return np.ones(len(self.events), dtype=bool)
        return self.events.occurred_at < cutoff[self.events.users]

    def item_features(
        self,
        *,
        use_categories: bool = True,
        use_product_types: bool = False,
        use_attributes: bool = False,
    ) -> sp.csr_matrix:
        """Identity plus one-hot category, one-hot product type and multi-hot attribute values
        (columns in that order),
        rows normalised to sum 1 (LightFM's convention): a product with few or no purchases
        still gets its category's and type's embeddings (cold start)."""
        n = self.n_items
        identity = sp.identity(n, dtype=np.float32, format="csr")
        blocks = [identity]
        if use_categories:
            blocks.extend(_one_hot(self.item_categories, n))
        if use_product_types:
            blocks.extend(_one_hot(self.item_product_types, n))
        if use_attributes:
            blocks.extend(_multi_hot(self.item_attributes, n))
        if len(blocks) == 1:
            return identity
        features = sp.hstack(blocks, format="csr", dtype=np.float32)
        row_sums = np.asarray(features.sum(axis=1)).ravel()
        return sp.diags(1.0 / row_sums).dot(features).tocsr().astype(np.float32)

    def user_feature_names(
        self, *, use_channels: bool = False, use_countries: bool = False
    ) -> list[str]:
        """The user-feature columns after the identity block, in matrix order:
        ``channel:<id>`` for every channel anyone bought in (none in a one-channel shop),
        then ``country:<code>`` for every known country (both sorted). Taken from *all*
        purchases, so the holdout fit and the warm-start refit share one column layout;
        serving maps a cold customer's channel and country to these names."""
        names: list[str] = []
        if use_channels:
            used = np.unique(self.channels) if self.n_purchases else np.zeros(0, np.int32)
            ids = [self.channel_ids[c] for c in used if self.channel_ids[c]]
            # One channel tells no customers apart, yet dilutes every identity like a real
            # feature; as a cold customer's only feature it is an "average customer", which
            # beat popularity on UCI but lost to it on the test shop (docs/recommendations.md).
            if len(ids) > 1:
                names += sorted(channel_feature(cid) for cid in ids)
        if use_countries:
            names += sorted({country_feature(c) for c in self.user_countries if c})
        return names

    def user_features(
        self,
        mask: np.ndarray | None = None,
        *,
        use_channels: bool = False,
        use_countries: bool = False,
    ) -> sp.csr_matrix | None:
        """Identity plus multi-hot "bought in channel" (over the ``mask`` purchases, so the
        holdout fit cannot learn a channel from the held-out order) plus one-hot country,
        rows normalised to sum 1 like the item features. ``None`` when no feature column
        exists: LightFM then uses its own identity matrix, exactly as before the setting."""
        names = self.user_feature_names(use_channels=use_channels, use_countries=use_countries)
        if not names:
            return None
        n = self.n_users
        column = {name: n + i for i, name in enumerate(names)}
        rows: list[np.ndarray] = [np.arange(n, dtype=np.int64)]
        cols: list[np.ndarray] = [np.arange(n, dtype=np.int64)]
        if use_channels and self.n_purchases:
            users, channels = self.users, self.channels
            if mask is not None:
                users, channels = users[mask], channels[mask]
            pairs = np.unique(np.stack([users.astype(np.int64), channels.astype(np.int64)]), axis=1)
            channel_col = np.array(
                [column.get(channel_feature(cid), -1) for cid in self.channel_ids], dtype=np.int64
            )
            pair_cols = channel_col[pairs[1]]
            keep = pair_cols >= 0
            rows.append(pairs[0][keep])
            cols.append(pair_cols[keep])
        if use_countries and self.user_countries:
            countries = self.user_countries
            known = [(u, column[country_feature(c)]) for u, c in enumerate(countries) if c]
            if known:
                rows.append(np.array([u for u, _ in known], dtype=np.int64))
                cols.append(np.array([c for _, c in known], dtype=np.int64))
        all_rows, all_cols = np.concatenate(rows), np.concatenate(cols)
        features = sp.csr_matrix(
            (np.ones(len(all_rows), dtype=np.float32), (all_rows, all_cols)),
            shape=(n, n + len(names)),
        )
        row_sums = np.asarray(features.sum(axis=1)).ravel()
        return sp.diags(1.0 / row_sums).dot(features).tocsr().astype(np.float32)


def _one_hot(labels: list[str], n: int) -> list[sp.csr_matrix]:
    """One column per distinct non-empty label (sorted, so runs are reproducible); nothing
    when no item has a label, so an unknown feature adds no empty columns."""
    distinct = sorted({c for c in labels if c})
    if not distinct:
        return []
    index = {c: i for i, c in enumerate(distinct)}
    rows = [i for i, c in enumerate(labels) if c]
    cols = [index[labels[i]] for i in rows]
    return [
        sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(distinct))
        )
    ]


def _multi_hot(labels: list[list[str]], n: int) -> list[sp.csr_matrix]:
    """One column per distinct attribute value (sorted), any number per item; nothing when no
    item has one. Attribute columns come after the category and product-type columns."""
    distinct = sorted({a for values in labels for a in values})
    if not distinct:
        return []
    index = {a: i for i, a in enumerate(distinct)}
    rows = [i for i, values in enumerate(labels) for _ in values]
    cols = [index[a] for values in labels for a in values]
    return [
        sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(distinct))
        )
    ]


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


def extract_interactions(
    *, until: datetime | None = None, event_weights: Mapping[str, float] | None = None
) -> Interactions:
    """Read paid order lines into ``Interactions`` (one streaming query, no per-row ORM),
    plus the storefront events of the kinds with a positive weight in ``event_weights``."""
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
        "product_type_id",
        "attributes",
        "order__customer__country_code",
    )
    # A fixed row order: the order of first appearance numbers users and items, and LightFM's
    # seeded shuffles run over the rows, so without it the same data and seed gave another model
    # whenever PostgreSQL picked another join plan (table statistics after other writes).
    data = build_interactions(rows.order_by("pk").iterator(chunk_size=20000))
    weights = {k: float(w) for k, w in (event_weights or {}).items() if float(w) > 0}
    if weights:
        data.events = extract_events(data, weights, until=until)
    return data


def extract_events(
    data: Interactions, weights: Mapping[str, float], *, until: datetime | None = None
) -> EventSignals:
    """Storefront events of signed-in, not erased customers (anonymous ids are never merged
    into customers, so anonymous events cannot be attributed to anyone)."""
    from saleor_crm_plugin.recommendations.models import StorefrontEvent

    events = StorefrontEvent.objects.filter(
        kind__in=[k for k in weights if k in TRAINING_EVENT_KINDS],
        customer__isnull=False,
        customer__erased_at__isnull=True,
    )
    if until is not None:
        events = events.filter(occurred_at__lte=until)
    rows = events.values_list("customer_id", "product_id", "kind", "occurred_at").order_by("pk")
    return build_events(data, rows.iterator(chunk_size=20000), weights)


def build_events(
    data: Interactions,
    rows: Iterable[tuple[int, str, str, datetime | float]],
    weights: Mapping[str, float],
) -> EventSignals:
    """Rows are ``(customer, product, kind, occurred_at)``. Only customers and products that
    are already in the purchase data count: ``trackEvent`` is public and does not check
    product ids against the catalogue, so an event must never put an unknown product (or a
    typo, or spam) into the model; and a customer who never bought keeps getting popular
    products until the first order."""
    user_index = {pk: n for n, pk in enumerate(data.user_ids)}
    item_index = {pid: n for n, pid in enumerate(data.item_ids)}
    users: list[int] = []
    items: list[int] = []
    values: list[float] = []
    at: list[float] = []
    for customer, product, kind, occurred_at in rows:
        u = user_index.get(customer)
        i = item_index.get(product)
        weight = weights.get(kind, 0.0)
        if u is None or i is None or weight <= 0:
            continue
        users.append(u)
        items.append(i)
        values.append(weight)
        at.append(
            occurred_at.timestamp() if isinstance(occurred_at, datetime) else float(occurred_at)
        )
    return EventSignals(
        users=np.asarray(users, dtype=np.int32),
        items=np.asarray(items, dtype=np.int32),
        weights=np.asarray(values, dtype=np.float32),
        occurred_at=np.asarray(at, dtype=np.float64),
    )


def build_interactions(rows) -> Interactions:  # type: ignore[no-untyped-def]
    """Rows are ``(customer, product, category, qty, refunded qty, paid_at, order, channel)``,
    optionally followed by the product type, the attribute list and the customer's country
    code; also used by the benchmarks to feed external data through the same code path."""
    user_index: dict[int, int] = {}
    item_index: dict[str, int] = {}
    channel_index: dict[str, int] = {}
    categories: list[str] = []
    product_types: list[str] = []
    attributes: list[list[str]] = []
    countries: list[str] = []
    users: list[int] = []
    items: list[int] = []
    quantities: list[float] = []
    paid: list[float] = []
    orders: list[int] = []
    channels: list[int] = []
    for customer, product, category, qty, refunded, paid_at, order, channel, *extra in rows:
        net = qty - refunded
        if net <= 0:
            continue
        product_type = extra[0] if extra else ""
        item_attrs = sorted(set(extra[1] or ())) if len(extra) > 1 else []
        country = (extra[2] or "") if len(extra) > 2 else ""
        u = user_index.get(customer)
        if u is None:
            u = user_index[customer] = len(user_index)
            countries.append(country)
        elif country and not countries[u]:
            countries[u] = country
        i = item_index.get(product)
        if i is None:
            i = item_index[product] = len(item_index)
            categories.append(category or "")
            product_types.append(product_type or "")
            attributes.append(item_attrs)
        else:
            if category and not categories[i]:
                categories[i] = category
            if product_type and not product_types[i]:
                product_types[i] = product_type
            if item_attrs and not attributes[i]:
                attributes[i] = item_attrs
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
        item_product_types=product_types,
        item_attributes=attributes,
        user_countries=countries,
    )


@dataclass
class Holdout:
    """Time-based holdout: each customer's last order is the test set, the rest trains."""

    train_mask: np.ndarray  # bool per purchase
    test_users: np.ndarray  # row indexes of customers with a test order
    test_items: list[np.ndarray]  # distinct product columns of each test user's last order
    # Per user row: storefront events from this instant on are hidden from the holdout fit
    # (the customer's last training order for customers with a held-out order, else +inf).
    event_cutoff: np.ndarray | None = None


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
    # Eligible customers have at least one training purchase, so the maximum is finite.
    last_train = np.full(data.n_users, -np.inf)
    np.maximum.at(last_train, data.users[train_mask], data.paid_at[train_mask])
    event_cutoff = np.where(eligible, last_train, np.inf)
    return Holdout(
        train_mask=train_mask,
        test_users=test_users,
        test_items=test_items,
        event_cutoff=event_cutoff,
    )
