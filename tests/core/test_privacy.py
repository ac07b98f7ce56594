"""``core.privacy.email_hash`` (one-shot HMAC with a remembered key) gives what
``hmac.new(key, address, sha256).hexdigest()`` gave with the key derived on every call, and
follows a change of either setting the key is made from."""

from __future__ import annotations

import hashlib
import hmac

from django.test.utils import override_settings

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.privacy import email_hash

ADDRESSES = ["a@example.com", "  Mixed.Case@Example.COM ", "ünïcode@exämple.org", "x", "\t"]


def _reference(email: str) -> str:
    normalized = (email or "").strip().lower()
    if not normalized:
        return ""
    return hmac.new(crm_settings.HASH_KEY, normalized.encode(), hashlib.sha256).hexdigest()


def test_email_hash_is_the_hmac_it_was():
    for address in [*ADDRESSES, "", None]:
        assert email_hash(address) == _reference(address)  # type: ignore[arg-type]
    assert email_hash("A@example.com ") == email_hash("a@example.com")
    assert email_hash("   ") == email_hash("") == ""


def test_email_hash_follows_the_settings_it_is_keyed_by():
    base = email_hash("a@example.com")
    with override_settings(CRM_HASH_KEY="explicit-key"):
        explicit = email_hash("a@example.com")
        assert explicit == _reference("a@example.com") != base
    with override_settings(SECRET_KEY="another-secret"):
        derived = email_hash("a@example.com")
        assert derived == _reference("a@example.com") not in (base, explicit)
    assert email_hash("a@example.com") == base


def test_email_hash_follows_the_hash_key_set_on_the_running_settings(settings):
    """The pytest-django fixture's way of changing a setting (and the signal it sends)."""
    base = email_hash("a@example.com")
    settings.CRM_HASH_KEY = "fixture-key"
    assert email_hash("a@example.com") == _reference("a@example.com") != base
    settings.CRM_HASH_KEY = ""
    assert email_hash("a@example.com") == base
