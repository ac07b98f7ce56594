"""Verification of ``Saleor-Signature``: an RS256 JWS with a detached, unencoded payload
(RFC 7797, ``{"alg":"RS256","b64":false,"crit":["b64"],"kid":...}``), signed by the Saleor
instance's private key and checked against its JWKS.

The signature is parsed once (``parse_signature``: header, ``kid``, signature bytes) and checked
with the cached public key directly on ``protected-header "." raw body``, byte for byte. Only
the detached, unencoded form is accepted: Saleor signs every JWT it issues (customer access
tokens included) with the same key, and a generic JWS decoder verifies such a token against its
own embedded payload, which would let anyone holding one pass any body as "signed".
"""

from __future__ import annotations

import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.utils import base64url_decode

# RFC 7797's ``b64`` is the only critical header parameter we understand (RFC 7515 §4.1.11:
# a signature naming any other one must be rejected).
_SUPPORTED_CRIT = frozenset({"b64"})
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()  # stateless: one instance serves every verification


class SignatureError(Exception):
    """The request is not provably from the registered Saleor instance."""


class UnknownKeyId(SignatureError):
    pass


@dataclass(frozen=True, slots=True)
class DetachedSignature:
    """A parsed ``Saleor-Signature``: what is signed is ``protected + b"." + body``."""

    kid: str
    protected: bytes
    signature: bytes


def parse_signature(signature: str) -> DetachedSignature:
    """Read the header once and refuse anything but RS256 over a detached unencoded payload."""
    try:
        token = signature.encode("ascii")
    except UnicodeEncodeError as exc:
        raise SignatureError("Malformed signature: not ASCII.") from exc
    parts = token.split(b".")
    if len(parts) != 3:
        raise SignatureError("Malformed signature: not a compact JWS.")
    protected, payload_segment, signature_segment = parts
    if payload_segment:
        raise SignatureError("Signature must have a detached payload.")
    # A real header is about 100 bytes; a caller's oversized one is read but not kept.
    read = _read_protected if len(protected) <= _CACHED_HEADER_BYTES else _read_protected_uncached
    malformed, refused, kid = read(protected)
    if malformed:
        raise SignatureError(malformed)
    try:
        raw_signature = _b64url_decode(signature_segment)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"Malformed signature: {exc}") from exc
    if refused:
        raise SignatureError(refused)
    return DetachedSignature(kid=kid, protected=protected, signature=raw_signature)


_CACHED_HEADER_BYTES = 512
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _b64url_decode(segment: bytes) -> bytes:
    """``jwt.utils.base64url_decode`` of bytes, same padding, same non-strict decoder and so
    the same bytes and errors, in one call instead of five (``force_bytes``,
    ``urlsafe_b64decode``, ``b64decode``...) per delivery; ``tests/app/test_jws.py`` compares
    the two."""
    rem = len(segment) % 4
    if rem:
        segment += b"=" * (4 - rem)
    return binascii.a2b_base64(segment.translate(_URLSAFE_TO_STANDARD))


def _read_protected_uncached(protected: bytes) -> tuple[str, str, str]:
    """``(decoding error, refusal, kid)`` of a protected header, one of the three non-empty.

    One Saleor signs every delivery with the same header (same ``kid`` until its key rotates),
    so decoding and checking it is cached: half of ``parse_signature``'s CPU. Errors come
    back as messages, not exceptions, so that a bad header is cached too and they are raised
    in the order they always were (an undecodable header before an undecodable signature,
    that before a refused header). The cache is bounded: headers are the caller's choice."""
    try:
        header = json.loads(base64url_decode(protected))
    except (ValueError, TypeError, binascii.Error) as exc:
        return f"Malformed signature: {exc}", "", ""
    if not isinstance(header, dict):
        return "", "Malformed signature: the header is not a JSON object.", ""
    if header.get("alg") != "RS256":
        return "", "Only RS256 signatures are accepted.", ""
    crit = header.get("crit")
    if header.get("b64") is not False or not isinstance(crit, list) or "b64" not in crit:
        return "", 'Signature must sign the raw body ("b64": false, critical).', ""
    if not all(isinstance(name, str) and name in _SUPPORTED_CRIT for name in crit):
        return "", f"Unsupported critical header parameters: {crit!r}.", ""
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        return "", "Signature has no key id.", ""
    return "", "", kid


_read_protected = functools.lru_cache(maxsize=64)(_read_protected_uncached)


def signature_kid(signature: str) -> str:
    return parse_signature(signature).kid


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


def verify_detached(signature: str | DetachedSignature, payload: bytes, key: Any) -> None:
    """Raise ``SignatureError`` unless ``signature`` signs exactly ``payload`` with ``key``."""
    parsed = signature if isinstance(signature, DetachedSignature) else parse_signature(signature)
    if not isinstance(key, RSAPublicKey):
        raise SignatureError("Invalid signature: not an RSA public key.")
    try:
        key.verify(parsed.signature, parsed.protected + b"." + payload, _PKCS1, _SHA256)
    except InvalidSignature as exc:
        raise SignatureError("Invalid signature: Signature verification failed") from exc
