"""The Saleor App manifest (``GET /api/manifest``)."""

from __future__ import annotations

from typing import Any

from saleor_crm_plugin import __version__
from saleor_crm_plugin.app.subscriptions import all_subscriptions
from saleor_crm_plugin.conf import crm_settings


def build_manifest(base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    webhook_url = f"{base}/api/webhooks/saleor"
    return {
        "id": crm_settings.APP_ID,
        "version": __version__,
        "name": crm_settings.APP_NAME,
        "about": (
            "Loyalty points and tiers, RFM segments, recommendations, returns and reviews "
            "for your Saleor store."
        ),
        "permissions": crm_settings.APP_PERMISSIONS,
        "appUrl": f"{base}/app/",
        "tokenTargetUrl": f"{base}/api/register",
        "homepageUrl": "https://github.com/saleor-crm-plugin/saleor-crm-plugin",
        "supportUrl": "https://github.com/saleor-crm-plugin/saleor-crm-plugin/issues",
        "dataPrivacyUrl": f"{base}/privacy",
        "author": "saleor-crm-plugin developers",
        "requiredSaleorVersion": crm_settings.REQUIRED_SALEOR_VERSION,
        "webhooks": [
            {
                "name": f"crm-{kind.value.replace('_', '-')}",
                "asyncEvents": [kind.value.upper()],
                "query": query,
                "targetUrl": webhook_url,
                "isActive": True,
            }
            for kind, query in all_subscriptions().items()
        ],
        # Dashboard extensions (customer widgets, navigation) arrive with the GraphQL issue.
        "extensions": [],
    }
