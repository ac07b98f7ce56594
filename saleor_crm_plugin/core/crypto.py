"""Secrets at rest (Saleor app tokens), encrypted with a key derived from settings."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken

from saleor_crm_plugin.conf import crm_settings


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(crm_settings.ENCRYPTION_KEY))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt(value: str) -> str:
    if not value:
        return ""
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "Stored token cannot be decrypted: CRM_ENCRYPTION_KEY or SECRET_KEY changed."
        ) from exc
