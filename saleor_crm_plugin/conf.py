"""CRM settings, read lazily from Django settings (``CRM_*``).

Properties rather than module constants so ``override_settings`` works in tests and nothing is
read at import time (the package is imported by Saleor before its settings are final). Every
setting is documented in ``docs/settings.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

# The App's fallback SECRET_KEY; a system check warns when it is used outside DEBUG.
INSECURE_DEV_KEY = "insecure-dev-key-change-me"

# ``settings._wrapped`` read in C: ``LazySettings.__getattribute__`` is Python.
_raw_attribute = object.__getattribute__


class CRMSettings:
    """Each ``CRM_*`` value is read from Django's settings once and then remembered.

    A setting the project leaves to its default cost two ``AttributeError`` raised in Python
    (``LazySettings``, then ``Settings``) before ``getattr`` fell back to the default: ~1.5 µs
    a read, and the hot paths read several per request or event (the webhook's instance
    cache lifetime, the kick's coalescing window, the batch size...). The values are forgotten
    when Django's settings object is another one (``override_settings`` swaps it, as
    pytest-django's ``settings`` fixture does) and on ``setting_changed``, as Django forgets
    its own setting caches; settings are not meant to change otherwise while running."""

    prefix = "CRM_"

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._read_from: Any = None

    def _get(self, name: str, default: Any) -> Any:
        wrapped = _raw_attribute(settings, "_wrapped")
        if wrapped is not self._read_from:
            self._values = {}
            self._read_from = wrapped
        try:
            return self._values[name]
        except KeyError:
            value = self._values[name] = getattr(settings, self.prefix + name, default)
            return value

    def derived(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered and forgotten with the settings it reads: for a value a hot
        path derives from several settings (the kick's coalescing window and key expiry),
        where the reads and the arithmetic cost more than the path's own work."""
        wrapped = _raw_attribute(settings, "_wrapped")
        if wrapped is not self._read_from:
            self._values = {}
            self._read_from = wrapped
        key = ("derived", name)
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = compute()
            return value

    def forget(self, **kwargs: Any) -> None:
        """Read every value again (connected to ``setting_changed``)."""
        self._values = {}

    # -- App mode -------------------------------------------------------------------------
    @property
    def APP_ID(self) -> str:
        return self._get("APP_ID", "saleor.crm")

    @property
    def APP_NAME(self) -> str:
        return self._get("APP_NAME", "Saleor CRM")

    @property
    def APP_URL(self) -> str:
        """Public base URL of the App (``https://crm.example.com``); derived from the request
        when empty, which is right unless a proxy rewrites the host."""
        return self._get("APP_URL", "").rstrip("/")

    @property
    def ALLOWED_SALEOR_URLS(self) -> list[str]:
        """``Saleor-Api-Url`` values (shell patterns allowed) that may install the App."""
        value = self._get("ALLOWED_SALEOR_URLS", [])
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return list(value)

    @property
    def APP_PERMISSIONS(self) -> list[str]:
        return list(
            self._get(
                "APP_PERMISSIONS",
                ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_PRODUCTS", "MANAGE_GIFT_CARD"],
            )
        )

    @property
    def REQUIRED_SALEOR_VERSION(self) -> str:
        return self._get("REQUIRED_SALEOR_VERSION", "^3.23")

    @property
    def JWKS_REFRESH_INTERVAL(self) -> float:
        """Minimum seconds between JWKS re-fetches triggered by an unknown ``kid``."""
        return float(self._get("JWKS_REFRESH_INTERVAL", 60))

    @property
    def INSTANCE_CACHE_SECONDS(self) -> float:
        return float(self._get("INSTANCE_CACHE_SECONDS", 30))

    @property
    def HTTP_TIMEOUT(self) -> float:
        return float(self._get("HTTP_TIMEOUT", 10))

    # -- plugin mode / outbound calls ------------------------------------------------------
    @property
    def SALEOR_API_URL(self) -> str:
        return self._get("SALEOR_API_URL", "")

    @property
    def SALEOR_APP_TOKEN(self) -> str:
        return self._get("SALEOR_APP_TOKEN", "")

    # -- inbox -----------------------------------------------------------------------------
    @property
    def INBOX_BATCH_SIZE(self) -> int:
        return int(self._get("INBOX_BATCH_SIZE", 500))

    @property
    def INBOX_MAX_ATTEMPTS(self) -> int:
        return int(self._get("INBOX_MAX_ATTEMPTS", 5))

    @property
    def INBOX_SWEEP_AFTER_SECONDS(self) -> int:
        """A pending event older than this is considered stranded and re-enqueued."""
        return int(self._get("INBOX_SWEEP_AFTER_SECONDS", 60))

    @property
    def INBOX_RETENTION_DAYS(self) -> int:
        return int(self._get("INBOX_RETENTION_DAYS", 30))

    @property
    def INBOX_KICK_COALESCE_SECONDS(self) -> float:
        """Coalesce processing kicks: at most one queued drain task per this many seconds
        (needs a cache shared by web and worker processes; 0 = one task per event)."""
        return float(self._get("INBOX_KICK_COALESCE_SECONDS", 0))

    @property
    def INBOX_LINGER_SECONDS(self) -> float:
        """How long a kicked drain waits for a batch to fill before claiming it: under a live
        stream a drain that starts at once takes the few events that arrived since the last
        one, and each batch has a fixed cost. Only useful with coalesced kicks (default 0.5 s
        then, else 0); adds up to this much processing latency."""
        default = 0.5 if self.INBOX_KICK_COALESCE_SECONDS > 0 else 0
        return float(self._get("INBOX_LINGER_SECONDS", default))

    @property
    def REQUEST_GATE(self) -> bool:
        """Let one request thread per App process run at a time, except while it waits on
        Saleor (``core/gate.py``): threads then take turns per request instead of fighting
        over the GIL at every SQL round trip. Read once, when the WSGI handler is built."""
        return bool(self._get("REQUEST_GATE", True))

    @property
    def ACCESS_LOG(self) -> bool:
        """The App's WSGI handler writes one line per request to the
        ``saleor_crm_plugin.access`` logger (``saleor-crm serve`` turns it on by default).
        Read once, when the WSGI handler is built."""
        return bool(self._get("ACCESS_LOG", False))

    @property
    def CONNECTION_BALANCE_FILE(self) -> str:
        """Set by ``saleor-crm serve --balance`` only: the file through which its worker
        processes share their load (``core/balance.py``); empty, no balancing. Read once,
        when the WSGI handler is built."""
        return str(self._get("CONNECTION_BALANCE_FILE", ""))

    @property
    def CONNECTION_BALANCE_INTERVAL(self) -> float:
        """Seconds: at most one ``Connection: close`` per worker per this interval."""
        return float(self._get("CONNECTION_BALANCE_INTERVAL", 0.05))

    @property
    def CONNECTION_BALANCE_COUNT(self) -> str:
        """What a worker's load is: its established ``connections`` (Linux ``/proc``, else
        requests) or its ``requests`` in flight (which cannot exceed its threads)."""
        return str(self._get("CONNECTION_BALANCE_COUNT", "connections"))

    @property
    def GC_YOUNG_THRESHOLD(self) -> int:
        """App processes (web and worker): freeze the start-up heap and let this many more
        container objects be allocated than freed before a young collection (Python: 700);
        0 leaves the collector untouched (``core/heap.py``). Read once, at process start."""
        return int(self._get("GC_YOUNG_THRESHOLD", 10000))

    # -- write-back to Saleor ---------------------------------------------------------------
    @property
    def WRITEBACK_RATE_PER_SECOND(self) -> float:
        """Upper bound on metadata mutations sent to Saleor per second, per worker."""
        return float(self._get("WRITEBACK_RATE_PER_SECOND", 5))

    @property
    def WRITEBACK_MAX_SECONDS_PER_RUN(self) -> float:
        return float(self._get("WRITEBACK_MAX_SECONDS_PER_RUN", 25))

    @property
    def WRITEBACK_MAX_ATTEMPTS(self) -> int:
        return int(self._get("WRITEBACK_MAX_ATTEMPTS", 8))

    # -- GraphQL API -------------------------------------------------------------------------
    @property
    def GRAPHQL_MAX_DEPTH(self) -> int:
        """Deepest selection a GraphQL document may nest (introspection excluded)."""
        return int(self._get("GRAPHQL_MAX_DEPTH", 12))

    @property
    def GRAPHQL_MAX_COMPLEXITY(self) -> int:
        """Upper bound on a document's estimated cost: one per field, times the page size of
        every enclosing connection."""
        return int(self._get("GRAPHQL_MAX_COMPLEXITY", 5000))

    @property
    def GRAPHQL_MAX_PAGE_SIZE(self) -> int:
        """Largest ``first``/``last`` a connection accepts (Saleor's limit is 100)."""
        return int(self._get("GRAPHQL_MAX_PAGE_SIZE", 100))

    @property
    def GRAPHQL_JWT_LEEWAY(self) -> float:
        """Seconds of clock skew tolerated on ``exp`` of Saleor access tokens."""
        return float(self._get("GRAPHQL_JWT_LEEWAY", 0))

    @property
    def GRAPHQL_APP_TOKEN_CACHE_SECONDS(self) -> int:
        """How long the answer of Saleor about an app token (valid or not) is reused."""
        return int(self._get("GRAPHQL_APP_TOKEN_CACHE_SECONDS", 60))

    @property
    def GRAPHQL_ALLOWED_ORIGINS(self) -> list[str]:
        """Browser origins (shell patterns) allowed to call ``/graphql/`` in App mode (CORS).
        Plugin mode relies on Saleor's own CORS handling (``ALLOWED_GRAPHQL_ORIGINS``)."""
        value = self._get("GRAPHQL_ALLOWED_ORIGINS", [])
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return list(value)

    # -- RFM segments ------------------------------------------------------------------------
    @property
    def RFM_FREQUENCY_WINDOW_DAYS(self) -> int:
        """Days of paid orders counted in frequency and monetary (0 = lifetime)."""
        return int(self._get("RFM_FREQUENCY_WINDOW_DAYS", 365))

    @property
    def RFM_FULL_RECOMPUTE_DAYS(self) -> int:
        """The nightly task runs incrementally, and a full recompute when the last full run
        of the channel is older than this many days (0 = always full)."""
        return int(self._get("RFM_FULL_RECOMPUTE_DAYS", 7))

    @property
    def RFM_WORK_MEM(self) -> str:
        """PostgreSQL ``work_mem`` for the recompute transaction only (e.g. "256MB" keeps its
        aggregate over all orders and its sorts in memory); empty = the server's setting."""
        return str(self._get("RFM_WORK_MEM", ""))

    @property
    def RFM_WRITEBACK(self) -> bool:
        """Mirror each customer's segment and scores into Saleor private metadata."""
        return bool(self._get("RFM_WRITEBACK", True))

    # -- loyalty ---------------------------------------------------------------------------
    @property
    def LOYALTY(self) -> dict[str, Any]:
        """Program settings for every channel (keys in ``docs/loyalty.md``)."""
        return dict(self._get("LOYALTY", {}))

    @property
    def LOYALTY_CHANNELS(self) -> dict[str, dict[str, Any]]:
        """Per-channel overrides of ``CRM_LOYALTY``, keyed by channel slug or id."""
        return dict(self._get("LOYALTY_CHANNELS", {}))

    @property
    def LOYALTY_CONFIRM_BATCH(self) -> int:
        """Lots confirmed/expired per transaction by the beat tasks."""
        return int(self._get("LOYALTY_CONFIRM_BATCH", 500))

    @property
    def LOYALTY_SETTINGS_CACHE_SECONDS(self) -> float:
        """How long a process keeps the program settings saved through the API before reading
        them again (the process that saves sees its change at once)."""
        return float(self._get("LOYALTY_SETTINGS_CACHE_SECONDS", 5))

    # -- secrets ---------------------------------------------------------------------------
    @property
    def ENCRYPTION_KEY(self) -> bytes:
        explicit = self._get("ENCRYPTION_KEY", "")
        material = explicit or f"crm-encryption:{settings.SECRET_KEY}"
        return hashlib.sha256(material.encode()).digest()

    @property
    def HASH_KEY(self) -> bytes:
        material = self._get("HASH_KEY", "") or f"crm-email-hash:{settings.SECRET_KEY}"
        return hashlib.sha256(material.encode()).digest()

    # -- recommendations -------------------------------------------------------------------
    @property
    def RECS_ENABLED(self) -> bool:
        """Train and serve recommendations; in plugin mode the dashboard's "Recommendations"
        switch (``recommendations_enabled``) must be on too."""
        if not bool(self._get("RECS_ENABLED", True)):
            return False
        if getattr(settings, "CRM_APP_MODE", False):
            return True  # no plugin form in App mode (and no failing Saleor import per call)
        from saleor_crm_plugin.core.compat import plugin_configuration

        return bool(plugin_configuration().get("recommendations_enabled", True))

    @property
    def RECS_COMPONENTS(self) -> int:
        """Embedding size of the LightFM model."""
        return int(self._get("RECS_COMPONENTS", 64))

    @property
    def RECS_EPOCHS(self) -> int:
        return int(self._get("RECS_EPOCHS", 15))

    @property
    def RECS_LEARNING_RATE(self) -> float:
        return float(self._get("RECS_LEARNING_RATE", 0.05))

    @property
    def RECS_LOSS(self) -> str:
        """LightFM loss: ``warp`` (default), ``bpr``, ``warp-kos`` or ``logistic``."""
        return str(self._get("RECS_LOSS", "warp"))

    @property
    def RECS_ITEM_ALPHA(self) -> float:
        return float(self._get("RECS_ITEM_ALPHA", 5e-4))

    @property
    def RECS_USER_ALPHA(self) -> float:
        return float(self._get("RECS_USER_ALPHA", 5e-4))

    @property
    def RECS_MAX_SAMPLED(self) -> int:
        return int(self._get("RECS_MAX_SAMPLED", 10))

    @property
    def RECS_SEED(self) -> int:
        return int(self._get("RECS_SEED", 42))

    @property
    def RECS_THREADS(self) -> int:
        """Training threads; 1 makes training bit-for-bit reproducible."""
        return int(self._get("RECS_THREADS", 2))

    @property
    def RECS_HALF_LIFE_DAYS(self) -> float:
        """A purchase counts half as much after this many days (0 = no decay)."""
        return float(self._get("RECS_HALF_LIFE_DAYS", 180))

    @property
    def RECS_CATEGORY_FEATURES(self) -> bool:
        """Add product categories as item features (cold start for new products)."""
        return bool(self._get("RECS_CATEGORY_FEATURES", False))

    @property
    def RECS_PRODUCT_TYPE_FEATURES(self) -> bool:
        """Add product types as item features (cold start for new products)."""
        return bool(self._get("RECS_PRODUCT_TYPE_FEATURES", False))

    @property
    def RECS_ATTRIBUTE_FEATURES(self) -> bool:
        """Add product attribute values as item features (cold start for new products)."""
        return bool(self._get("RECS_ATTRIBUTE_FEATURES", False))

    @property
    def RECS_USER_CHANNEL_FEATURES(self) -> bool:
        """Add the channels a customer bought in as user features."""
        return bool(self._get("RECS_USER_CHANNEL_FEATURES", False))

    @property
    def RECS_USER_COUNTRY_FEATURES(self) -> bool:
        """Add the customer's country as a user feature (cold start for new customers)."""
        return bool(self._get("RECS_USER_COUNTRY_FEATURES", False))

    @property
    def RECS_COUNTRY_CENTROIDS(self) -> bool:
        """Score a signed-in customer without purchases from the mean vector of the trained
        customers of their country when the model has no user features (cold start that
        leaves existing customers' ranking untouched; measured in docs/recommendations.md)."""
        return bool(self._get("RECS_COUNTRY_CENTROIDS", True))

    @property
    def RECS_COUNTRY_CENTROID_MIN_CUSTOMERS(self) -> int:
        """A country's centroid serves only when it is the mean of at least this many
        trained customers (two customers are not a country's taste)."""
        return max(1, int(self._get("RECS_COUNTRY_CENTROID_MIN_CUSTOMERS", 20)))

    @property
    def RECS_REPEAT_WEIGHT(self) -> float:
        """How much a customer's own purchase history lifts a product's score (0 = pure
        LightFM). Repeat purchases dominate many shops; the holdout measures the effect."""
        return float(self._get("RECS_REPEAT_WEIGHT", 2.0))

    @property
    def RECS_PROMOTION_MARGIN(self) -> float:
        """A model serves only if its NDCG@10 >= best baseline x (1 + margin)."""
        return float(self._get("RECS_PROMOTION_MARGIN", 0.05))

    @property
    def RECS_MIN_INTERACTIONS(self) -> int:
        """Below this many purchases no model is trained; popularity serves."""
        return int(self._get("RECS_MIN_INTERACTIONS", 200))

    @property
    def RECS_EVAL_MAX_USERS(self) -> int:
        """Test customers sampled (seeded) for the holdout metrics."""
        return int(self._get("RECS_EVAL_MAX_USERS", 5000))

    @property
    def RECS_REFIT_ON_FULL(self) -> bool:
        """After a successful evaluation, refit on all data so the latest orders count."""
        return bool(self._get("RECS_REFIT_ON_FULL", True))

    @property
    def RECS_REFIT_EPOCHS(self) -> int:
        """Epochs of the refit, continuing the evaluated model (0 = train from scratch)."""
        return int(self._get("RECS_REFIT_EPOCHS", 5))

    @property
    def RECS_PRECOMPUTE_K(self) -> int:
        """Candidates stored per active customer (filters are applied when served)."""
        return int(self._get("RECS_PRECOMPUTE_K", 50))

    @property
    def RECS_SERVE_PRECOMPUTED(self) -> bool:
        """Serve personal lists from the precomputed table instead of scoring in memory.
        Off by default: with the model cached per process, scoring a customer against 10k
        products (~0.1 ms) is cheaper than the database round trip of the lookup."""
        return bool(self._get("RECS_SERVE_PRECOMPUTED", False))

    @property
    def RECS_ACTIVE_DAYS(self) -> int:
        """Customers who bought within this many days get precomputed lists."""
        return int(self._get("RECS_ACTIVE_DAYS", 90))

    @property
    def RECS_EXCLUDE_PURCHASED(self) -> bool:
        """Hide products the customer already bought from personal recommendations."""
        return bool(self._get("RECS_EXCLUDE_PURCHASED", False))

    @property
    def RECS_RETRAIN_AFTER_ORDERS(self) -> int:
        """Retrain early once this many new paid orders arrived since the last run (0 = off)."""
        return int(self._get("RECS_RETRAIN_AFTER_ORDERS", 1000))

    @property
    def RECS_MODEL_CHECK_SECONDS(self) -> float:
        """How long a web worker trusts its cached model before checking for a newer one."""
        return float(self._get("RECS_MODEL_CHECK_SECONDS", 30))

    @property
    def RECS_RULES_CACHE_SECONDS(self) -> float:
        """How long a web worker caches blocklist, boosts and availability."""
        return float(self._get("RECS_RULES_CACHE_SECONDS", 10))

    @property
    def RECS_ASSOCIATION_MIN_SUPPORT(self) -> int:
        """Orders two products must share before they count as bought together."""
        return int(self._get("RECS_ASSOCIATION_MIN_SUPPORT", 3))

    @property
    def RECS_TRENDING_DAYS(self) -> int:
        return int(self._get("RECS_TRENDING_DAYS", 14))

    @property
    def RECS_ATTRIBUTION_DAYS(self) -> int:
        """A purchase within this many days of a click is attributed to the click."""
        return int(self._get("RECS_ATTRIBUTION_DAYS", 7))

    @property
    def RECS_EVENT_WEIGHTS(self) -> dict[str, float]:
        """Storefront events as extra training signal: event kind -> weight relative to a
        one-unit purchase (``{"product_viewed": 0.1, "added_to_cart": 0.3}``, or the same as
        ``"product_viewed=0.1,added_to_cart=0.3"`` from the environment). Empty (the default)
        = off: what is served changes only when a merchant opts in."""
        from django.core.exceptions import ImproperlyConfigured

        value = self._get("RECS_EVENT_WEIGHTS", {}) or {}
        if isinstance(value, str):
            pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ImproperlyConfigured(
                    "CRM_RECS_EVENT_WEIGHTS: expected 'kind=weight,kind=weight'."
                )
            value = {k.strip(): v.strip() for k, v in pairs}
        allowed = ("product_viewed", "added_to_cart")
        weights: dict[str, float] = {}
        for kind, weight in dict(value).items():
            try:
                number = float(weight)
            except (TypeError, ValueError):
                number = -1.0
            if kind not in allowed or not 0.0 <= number <= 1.0:
                raise ImproperlyConfigured(
                    f"CRM_RECS_EVENT_WEIGHTS: {kind!r}={weight!r}; kinds are "
                    f"{', '.join(allowed)} and weights between 0 and 1 (a purchase is 1)."
                )
            weights[kind] = number
        return weights


crm_settings = CRMSettings()
setting_changed.connect(crm_settings.forget, dispatch_uid="saleor_crm_plugin.conf")
