"""Verification of ``Saleor-Signature``: an RS256 JWS with a detached, unencoded payload
(RFC 7797, ``{"alg":"RS256","b64":false,"crit":["b64"],"kid":...}``), signed by the Saleor
instance's private key and checked against its JWKS.

``PyJWKClient.get_signing_key_from_jwt`` cannot read detached tokens, so the ``kid`` is looked
up here; the signature is verified on the raw request body, byte for byte.
"""

from __future__ import annotations

from typing import Any

import jwt
from jwt.api_jws import PyJWS

_jws = PyJWS(algorithms=["RS256"])


class SignatureError(Exception):
    """The request is not provably from the registered Saleor instance."""


class UnknownKeyId(SignatureError):
    pass


def signature_kid(signature: str) -> str:
    try:
        header = jwt.get_unverified_header(signature)
    except jwt.PyJWTError as exc:
        raise SignatureError(f"Malformed signature: {exc}") from exc
    if header.get("alg") != "RS256":
        raise SignatureError("Only RS256 signatures are accepted.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("Signature has no key id.")
    return kid


def keys_from_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    """Public keys by ``kid``; keys that are not RSA signing keys are skipped."""
    keys: dict[str, Any] = {}
    for jwk in (jwks or {}).get("keys", []):
        if jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
        except jwt.PyJWTError:
            continue
    return keys


def verify_detached(signature: str, payload: bytes, key: Any) -> None:
    try:
        _jws.decode_complete(signature, key=key, algorithms=["RS256"], detached_payload=payload)
    except jwt.PyJWTError as exc:
        raise SignatureError(f"Invalid signature: {exc}") from exc
