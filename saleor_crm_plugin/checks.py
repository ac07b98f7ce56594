"""System checks: configuration mistakes surface at start-up, not as lost webhooks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from saleor_crm_plugin.conf import INSECURE_DEV_KEY, crm_settings


@checks.register(checks.Tags.security)
def check_allowed_saleor_urls(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if not getattr(settings, "CRM_APP_MODE", False):
        return messages
    patterns = crm_settings.ALLOWED_SALEOR_URLS
    if not patterns:
        messages.append(
            checks.Warning(
                "CRM_ALLOWED_SALEOR_URLS is empty: no Saleor instance can install the App.",
                hint="Set CRM_ALLOWED_SALEOR_URLS=https://your-store.saleor.cloud/graphql/",
                id="saleor_crm_plugin.W001",
            )
        )
    elif "*" in patterns and not settings.DEBUG:
        messages.append(
            checks.Warning(
                "CRM_ALLOWED_SALEOR_URLS allows any Saleor instance to install the App.",
                id="saleor_crm_plugin.W002",
            )
        )
    return messages


@checks.register(checks.Tags.security)
def check_secret_key(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    app_mode = getattr(settings, "CRM_APP_MODE", False)
    if app_mode and not settings.DEBUG and settings.SECRET_KEY == INSECURE_DEV_KEY:
        return [
            checks.Warning(
                "SECRET_KEY is the built-in development key; stored Saleor tokens are "
                "encrypted with a key derived from it.",
                hint="Set SECRET_KEY, and keep it: changing it makes stored tokens unreadable.",
                id="saleor_crm_plugin.W003",
            )
        ]
    return []
