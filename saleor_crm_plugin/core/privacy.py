"""Pseudonymous e-mail keys for erased customers.

After ``customer_deleted`` we keep only a keyed hash of the address: enough to recognise a late
or replayed event about the same person (and keep its personal data out), useless to anyone
without the key. HMAC rather than a bare hash, because e-mail addresses are easy to guess.
"""

from __future__ import annotations

import hashlib
import hmac

from saleor_crm_plugin.conf import crm_settings


def email_hash(email: str) -> str:
    normalized = (email or "").strip().lower()
    if not normalized:
        return ""
    key = crm_settings.HASH_KEY
    return hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()
