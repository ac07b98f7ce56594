"""Who is calling: Saleor's own credentials, verified without trusting the caller.

The CRM has no accounts of its own. Storefronts send the customer's Saleor access token, the
Dashboard sends the ``thirdparty`` token App Bridge hands to our app, operators' scripts send a
staff access token, and services send a Saleor app token. All are checked against the Saleor
instance that issued them, which must be one we trust (registered by the install handshake, or
configured in plugin mode):

- JWTs (``access``, ``thirdparty``) are RS256-verified against that instance's JWKS (one
  refresh on an unknown ``kid``, as for webhook signatures); ``exp`` and ``type`` are checked.
- ``thirdparty`` tokens must name our app (``app`` claim) and carry their ``permissions``.
- A staff ``access`` token carries no permissions, so Saleor is asked (``me { userPermissions
  }``) with that very token; the answer is cached for the token's remaining life.
- An app token is opaque: Saleor is asked what app it belongs to (``app { id permissions }``),
  and the answer (valid or not) is cached for ``CRM_GRAPHQL_APP_TOKEN_CACHE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from django.core.cache import cache

from saleor_crm_plugin.app import registry
from saleor_crm_plugin.app.jws import SignatureError
from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.lru import LRUCache
from saleor_crm_plugin.core.saleor_api import (
    SaleorApiError,
    SaleorClient,
    normalize_api_url,
    saleor_document,
)
from saleor_crm_plugin.permissions import SaleorPermission

logger = logging.getLogger(__name__)

STAFF_PERMISSIONS_QUERY = saleor_document(
    "CrmStaffPermissions", "query CrmStaffPermissions { me { id userPermissions { code } } }"
)
APP_TOKEN_QUERY = saleor_document(
    "CrmAppTokenCheck", "query CrmAppTokenCheck { app { id permissions { code } } }"
)

RequesterKind = Literal["anonymous", "customer", "staff", "app"]
ACCEPTED_TOKEN_TYPES = ("access", "thirdparty")


class AuthenticationError(Exception):
    """The credentials are present but not acceptable (HTTP 401). ``code`` follows the names
    Saleor uses for the same failures, so clients can share their token-refresh logic."""

    def __init__(self, message: str, *, code: str = "InvalidTokenError", status: int = 401):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status  # 503 when Saleor could not be asked: the token may be fine


@dataclass(frozen=True)
class Requester:
    kind: RequesterKind = "anonymous"
    saleor_api_url: str = ""
    user_id: str | None = None  # Saleor User global ID (customers and staff)
    email: str = ""
    app_id: str | None = None  # Saleor App global ID (app tokens and thirdparty tokens)
    permissions: frozenset[str] = frozenset()
    expires_at: float | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    def has_perm(self, permission: SaleorPermission | str) -> bool:
        return str(permission) in self.permissions

    def has_any_perm(self, permissions: tuple[SaleorPermission | str, ...]) -> bool:
        return any(self.has_perm(p) for p in permissions)


ANONYMOUS = Requester()


def token_from_headers(headers: Any) -> str | None:
    """``Authorization: Bearer|JWT <token>`` or App Bridge's ``Authorization-Bearer``."""
    value = headers.get("Authorization", "") or ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() in {"bearer", "jwt"} and token.strip():
        return token.strip()
    token = (headers.get("Authorization-Bearer", "") or "").strip()
    return token or None


def authenticate(headers: Any) -> Requester:
    """Resolve the request's credentials; ``ANONYMOUS`` without any. Raises
    ``AuthenticationError`` for credentials that are present but not acceptable: a bad token
    must not silently degrade to anonymous, or a storefront would show an empty account instead
    of refreshing its token."""
    token = token_from_headers(headers)
    if token is None:
        return ANONYMOUS
    if token.count(".") == 2:
        return authenticate_jwt(token)
    return authenticate_app_token(token, headers.get("Saleor-Api-Url", "") or "")


def _token_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class _VerifiedTokens:
    """Tokens whose signature and claims were checked, for at most ``TTL`` seconds and never
    past their expiry. A storefront sends the same access token with every request; decoding
    it twice and verifying RSA again each time was a sixth of a small query's CPU. A hit is
    honoured only while the registry still returns the very key object that verified the
    token, so a rotated key, a refreshed JWKS or an unregistered Saleor ends it at once."""

    TTL = 60.0

    def __init__(self, size: int = 4096) -> None:
        self._entries: LRUCache[str, tuple[float, str, str, Any, Requester]] = LRUCache(size)

    def get(self, token: str) -> Requester | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        valid_until, api_url, kid, key, requester = entry
        if time.time() < valid_until:
            try:
                _, current = registry.signing_key(api_url, kid)
            except SignatureError:
                current = None
            if current is key:
                return requester
        self._entries.pop(token)
        return None

    def put(
        self, token: str, valid_until: float, api_url: str, kid: str, key: Any, requester: Requester
    ) -> None:
        entry = (min(valid_until, time.time() + self.TTL), api_url, kid, key, requester)
        self._entries.put(token, entry)

    def clear(self) -> None:
        self._entries.clear()


verified_tokens = _VerifiedTokens()


def authenticate_jwt(token: str) -> Requester:
    cached = verified_tokens.get(token)
    if cached is not None:
        return cached
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"Invalid token: {exc}") from exc
    if header.get("alg") != "RS256":
        raise AuthenticationError("Only RS256 tokens issued by Saleor are accepted.")
    issuer = unverified.get("iss")
    kid = header.get("kid")
    if not isinstance(issuer, str) or not isinstance(kid, str) or not kid:
        raise AuthenticationError("The token has no issuer or key id.")
    try:
        api_url = normalize_api_url(issuer)
    except ValueError as exc:
        raise AuthenticationError("The token's issuer is not a Saleor API URL.") from exc
    registry.ensure_configured_instance(api_url)
    try:
        instance, key = registry.signing_key(api_url, kid)
    except SignatureError as exc:
        raise AuthenticationError(f"The token was not issued by a trusted Saleor: {exc}") from exc
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            options={"require": ["exp", "iss", "type"], "verify_aud": False},
            leeway=crm_settings.GRAPHQL_JWT_LEEWAY,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("Signature has expired.", code="ExpiredSignatureError") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"Invalid token: {exc}") from exc
    if claims.get("owner", "saleor") != "saleor":
        raise AuthenticationError("The token was not issued by Saleor itself.")
    token_type = claims.get("type")
    if token_type not in ACCEPTED_TOKEN_TYPES:
        raise AuthenticationError(f"Tokens of type {token_type!r} are not accepted here.")
    user_id = claims.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise AuthenticationError("The token names no user.")
    expires_at = float(claims["exp"])
    common = {
        "saleor_api_url": api_url,
        "user_id": user_id,
        "email": str(claims.get("email") or ""),
        "expires_at": expires_at,
    }
    if token_type == "thirdparty":
        # Issued by Saleor to *an* app for the signed-in staff user: only ours may use it here.
        if not instance.app_id or claims.get("app") != instance.app_id:
            raise AuthenticationError("The token was issued for another app.")
        permissions = claims.get("permissions") or []
        requester = Requester(
            kind="staff", app_id=instance.app_id, permissions=frozenset(permissions), **common
        )
    elif claims.get("is_staff"):
        permissions = staff_permissions(api_url, token, user_id, expires_at)
        requester = Requester(kind="staff", permissions=permissions, **common)
    else:
        requester = Requester(kind="customer", **common)
    # jwt accepts a token until ``exp + leeway``; the cache never outlives that.
    valid_until = expires_at + crm_settings.GRAPHQL_JWT_LEEWAY
    if not (requester.kind == "staff" and not requester.permissions and token_type != "thirdparty"):
        # (A staff token whose permissions Saleor could not tell us is not cached: the next
        # request asks again.)
        verified_tokens.put(token, valid_until, api_url, kid, key, requester)
    return requester


def staff_permissions(api_url: str, token: str, user_id: str, expires_at: float) -> frozenset[str]:
    """Ask Saleor, with the staff member's own token, which permissions they have; cached for
    the token's life (a revoked permission takes effect with the next token, as in Saleor's
    own Dashboard). Saleor being unreachable yields no permissions, uncached."""
    cache_key = "crm:graphql:staff:" + _token_key(api_url, token)
    cached = cache.get(cache_key)
    if cached is not None:
        return frozenset(cached)
    try:
        data = SaleorClient(api_url, token).execute(STAFF_PERMISSIONS_QUERY)
    except SaleorApiError as exc:
        if exc.errors:  # Saleor refused the token itself (e.g. revoked by a password change)
            raise AuthenticationError(f"Saleor refused the token: {exc}") from exc
        logger.warning("Could not resolve staff permissions from %s: %s", api_url, exc)
        return frozenset()
    me = data.get("me") or {}
    if me.get("id") != user_id:
        raise AuthenticationError("Saleor does not recognise the token's user.")
    codes = sorted({p["code"] for p in me.get("userPermissions") or [] if p.get("code")})
    ttl = int(expires_at - time.time())
    if ttl > 0:
        cache.set(cache_key, codes, timeout=ttl)
    return frozenset(codes)


def _app_token_instance_url(api_url_header: str) -> str:
    if api_url_header:
        try:
            return normalize_api_url(api_url_header)
        except ValueError as exc:
            raise AuthenticationError("Invalid Saleor-Api-Url header.") from exc
    configured = registry.configured_api_url()
    if configured:
        return configured
    from saleor_crm_plugin.app.models import SaleorInstance

    urls = list(SaleorInstance.objects.values_list("saleor_api_url", flat=True)[:2])
    if len(urls) != 1:
        raise AuthenticationError(
            "Send the Saleor-Api-Url header to say which Saleor issued this app token."
        )
    return urls[0]


def authenticate_app_token(token: str, api_url_header: str = "") -> Requester:
    api_url = _app_token_instance_url(api_url_header)
    registry.ensure_configured_instance(api_url)
    if registry.get_instance(api_url) is None:
        raise AuthenticationError(f"{api_url} is not a registered Saleor instance.")
    cache_key = "crm:graphql:app:" + _token_key(api_url, token)
    answer = cache.get(cache_key)
    if answer is None:
        try:
            data = SaleorClient(api_url, token).execute(APP_TOKEN_QUERY)
            app = data.get("app") or {}
            answer = {
                "app_id": app.get("id"),
                "permissions": sorted(
                    {p["code"] for p in app.get("permissions") or [] if p.get("code")}
                ),
            }
        except SaleorApiError as exc:
            unavailable = exc.errors is None and (exc.status is None or exc.status >= 500)
            if unavailable:
                logger.warning("Could not verify an app token with %s: %s", api_url, exc)
                raise AuthenticationError(
                    "Saleor could not be asked about this app token; try again later.",
                    code="SaleorUnavailable",
                    status=503,
                ) from exc
            answer = {"app_id": None, "permissions": []}
        cache.set(cache_key, answer, timeout=crm_settings.GRAPHQL_APP_TOKEN_CACHE_SECONDS)
    if not answer["app_id"]:
        raise AuthenticationError("Saleor does not recognise this app token.")
    return Requester(
        kind="app",
        saleor_api_url=api_url,
        app_id=answer["app_id"],
        permissions=frozenset(answer["permissions"]),
    )
