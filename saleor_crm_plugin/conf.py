"""CRM settings, read lazily from Django settings (``CRM_*``).

Properties rather than module constants so ``override_settings`` works in tests and nothing is
read at import time (the package is imported by Saleor before its settings are final). Every
setting is documented in ``docs/settings.md``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings

# The App's fallback SECRET_KEY; a system check warns when it is used outside DEBUG.
INSECURE_DEV_KEY = "insecure-dev-key-change-me"


class CRMSettings:
    prefix = "CRM_"

    def _get(self, name: str, default: Any) -> Any:
        return getattr(settings, self.prefix + name, default)

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
        return int(self._get("INBOX_BATCH_SIZE", 200))

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


crm_settings = CRMSettings()
