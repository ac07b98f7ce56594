"""Pseudonymous e-mail keys for erased customers.

After ``customer_deleted`` we keep only a keyed hash of the address: enough to recognise a late
or replayed event about the same person (and keep its personal data out), useless to anyone
without the key. HMAC rather than a bare hash, because e-mail addresses are easy to guess.
"""

from __future__ import annotations

import hmac

from django.conf import settings

from saleor_crm_plugin.conf import crm_settings

# The HMAC key (``crm_settings.HASH_KEY``) per value of the two settings it is made from: the
# worker hashes one or two addresses per event (the inbox's subject column, the batch's
# erased-customer check), and deriving the key again each time cost as much as the HMAC.
# Keyed by the settings themselves, so a changed setting (tests override them) takes effect.
_KEYS: dict[tuple[object, object], bytes] = {}


def _key() -> bytes:
    # ``CRM_HASH_KEY`` as ``crm_settings.HASH_KEY`` reads it (remembered per settings object):
    # ``getattr(settings, "CRM_HASH_KEY", "")`` raised and caught an AttributeError on every
    # call when the setting is left out, as it usually is.
    sources = (crm_settings._get("HASH_KEY", ""), settings.SECRET_KEY)
    key = _KEYS.get(sources)
    if key is None:
        key = crm_settings.HASH_KEY
        if len(_KEYS) >= 8:
            _KEYS.clear()
        _KEYS[sources] = key
    return key


def email_hash(email: str) -> str:
    """The address's keyed hash (lower-cased, trimmed; "" for no address), as
    ``hmac.new(key, address, sha256).hexdigest()``, by ``hmac.digest``'s one-shot C call
    rather than an HMAC object built in Python."""
    normalized = (email or "").strip().lower()
    if not normalized:
        return ""
    return hmac.digest(_key(), normalized.encode(), "sha256").hex()
