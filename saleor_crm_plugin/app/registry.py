"""Registered Saleor instances (the App's "APL") and their signing keys.

Lookups are cached per process for a few seconds: the webhook view must answer in milliseconds
and instances change only at (un)installation.
"""

from __future__ import annotations

import fnmatch
import functools
import threading
import time
from typing import Any

from django.utils import timezone

from saleor_crm_plugin.app.jws import (
    SignatureError,
    UnknownKeyId,
    keys_from_jwks,
    parse_signature,
    verify_detached,
)
from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core import crypto
from saleor_crm_plugin.core.saleor_api import (
    SaleorApiError,
    SaleorClient,
    fetch_jwks,
    normalize_api_url,
    saleor_document,
)

APP_ID_QUERY = saleor_document("AppId", "query AppId { app { id } }")


class RegistrationError(Exception):
    def __init__(self, message: str, *, code: str, status: int):
        super().__init__(message)
        self.code = code
        self.status = status


class _InstanceCache:
    MAX_ENTRIES = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, SaleorInstance | None, dict[str, Any]]] = {}
        self._last_refresh: dict[str, float] = {}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._last_refresh.clear()

    def get(self, api_url: str) -> tuple[SaleorInstance | None, dict[str, Any]]:
        now = time.monotonic()
        entry = self._entries.get(api_url)
        if entry and now - entry[0] < crm_settings.INSTANCE_CACHE_SECONDS:
            return entry[1], entry[2]
        instance = SaleorInstance.objects.filter(saleor_api_url=api_url).first()
        keys = keys_from_jwks(instance.jwks) if instance else {}
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                # Misses are cached too, and token issuers / Saleor-Api-Url headers are chosen
                # by the caller: bound the memory a stream of made-up URLs can take.
                self._entries.clear()
            self._entries[api_url] = (now, instance, keys)
        return instance, keys

    def put(self, instance: SaleorInstance) -> None:
        with self._lock:
            self._entries[instance.saleor_api_url] = (
                time.monotonic(),
                instance,
                keys_from_jwks(instance.jwks),
            )

    def may_refresh(self, api_url: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last_refresh.get(api_url)
            if last is not None and now - last < crm_settings.JWKS_REFRESH_INTERVAL:
                return False
            self._last_refresh[api_url] = now
            return True


instance_cache = _InstanceCache()


def is_allowed(api_url: str) -> bool:
    return any(
        fnmatch.fnmatchcase(api_url, pattern) for pattern in crm_settings.ALLOWED_SALEOR_URLS
    )


def get_instance(api_url: str) -> SaleorInstance | None:
    try:
        normalized = normalize_api_url(api_url)
    except ValueError:
        return None
    return instance_cache.get(normalized)[0]


# Every delivery of one Saleor carries the same ``Saleor-Api-Url``: its normalisation (URL split
# and joined again, ~6 calls) is remembered. Only results are cached (a ``ValueError`` is raised
# again each time), and the cache is bounded because the header is the caller's choice.
_normalized_header = functools.lru_cache(maxsize=64)(normalize_api_url)


def verify_webhook_signature(api_url: str, signature: str, body: bytes) -> SaleorInstance:
    """Raise ``SignatureError`` unless ``body`` was signed by the registered instance."""
    try:
        normalized = _normalized_header(api_url)
    except ValueError as exc:
        raise SignatureError("Invalid Saleor-Api-Url.") from exc
    parsed = parse_signature(signature)
    instance, key = signing_key(normalized, parsed.kid)
    verify_detached(parsed, body, key)
    return instance


def signing_key(normalized_api_url: str, kid: str) -> tuple[SaleorInstance, Any]:
    """The public key ``kid`` of a registered instance (webhook signatures, access tokens).

    Raises ``SignatureError`` for an unregistered instance and ``UnknownKeyId`` when the key is
    unknown even after one rate-limited JWKS refresh.
    """
    instance, keys = instance_cache.get(normalized_api_url)
    if instance is None:
        raise SignatureError(f"{normalized_api_url} is not a registered Saleor instance.")
    key = keys.get(kid)
    if key is None and instance_cache.may_refresh(normalized_api_url):
        # Saleor's key rotated (RSA_PRIVATE_KEY changed): fetch the new JWKS, once.
        try:
            instance = refresh_jwks(instance)
        except SaleorApiError as exc:
            raise UnknownKeyId(
                f"Unknown key id and the JWKS could not be refreshed: {exc}"
            ) from exc
        key = keys_from_jwks(instance.jwks).get(kid)
    if key is None:
        raise UnknownKeyId(f"Unknown signing key id {kid!r}.")
    return instance, key


def configured_api_url() -> str:
    """The Saleor named by settings or by the plugin configuration (plugin mode), if any."""
    from saleor_crm_plugin.core.compat import plugin_configuration

    url = crm_settings.SALEOR_API_URL or plugin_configuration().get("saleor_api_url") or ""
    try:
        return normalize_api_url(url) if url else ""
    except ValueError:
        return ""


def ensure_configured_instance(normalized_api_url: str) -> SaleorInstance | None:
    """Plugin mode has no install handshake: the Saleor the operator configured is trusted
    like a registered one, so record it (with its JWKS) the first time a token names it."""
    instance, _ = instance_cache.get(normalized_api_url)
    if instance is not None or normalized_api_url != configured_api_url():
        return instance
    try:
        jwks = fetch_jwks(normalized_api_url)
    except SaleorApiError:
        return None
    instance, _ = SaleorInstance.objects.get_or_create(
        saleor_api_url=normalized_api_url,
        defaults={"jwks": jwks, "jwks_fetched_at": timezone.now()},
    )
    instance_cache.put(instance)
    return instance


def refresh_jwks(instance: SaleorInstance) -> SaleorInstance:
    instance.jwks = fetch_jwks(instance.saleor_api_url)
    instance.jwks_fetched_at = timezone.now()
    instance.save(update_fields=["jwks", "jwks_fetched_at", "updated_at"])
    instance_cache.put(instance)
    return instance


def register(api_url: str, auth_token: str, *, domain: str = "") -> SaleorInstance:
    """The ``tokenTargetUrl`` handshake. The request is unsigned, so trust comes from the
    allow-list and from the token working against that very Saleor."""
    try:
        normalized = normalize_api_url(api_url)
    except ValueError as exc:
        raise RegistrationError(str(exc), code="INVALID", status=400) from exc
    if not is_allowed(normalized):
        raise RegistrationError(
            f"{normalized} is not allowed to install this app (CRM_ALLOWED_SALEOR_URLS).",
            code="FORBIDDEN",
            status=403,
        )
    if not auth_token:
        raise RegistrationError("Missing auth_token.", code="REQUIRED", status=400)
    try:
        data = SaleorClient(normalized, auth_token).execute(APP_ID_QUERY)
        app_id = (data.get("app") or {}).get("id")
        if not app_id:
            raise SaleorApiError("The token does not belong to an app.")
        jwks = fetch_jwks(normalized)
    except SaleorApiError as exc:
        raise RegistrationError(
            f"Could not verify the installation with {normalized}: {exc}",
            code="SALEOR_UNREACHABLE",
            status=400,
        ) from exc
    instance, _ = SaleorInstance.objects.update_or_create(
        saleor_api_url=normalized,
        defaults={
            "domain": domain,
            "app_id": app_id,
            "auth_token_encrypted": crypto.encrypt(auth_token),
            "jwks": jwks,
            "jwks_fetched_at": timezone.now(),
        },
    )
    instance_cache.put(instance)
    return instance


def app_token(instance: SaleorInstance) -> str:
    return crypto.decrypt(instance.auth_token_encrypted)
