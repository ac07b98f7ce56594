"""Which Saleor we write back to (gift cards, metadata), and with which token.

Order of precedence: explicit settings (``CRM_SALEOR_API_URL`` + ``CRM_SALEOR_APP_TOKEN``),
then the plugin configuration (plugin mode), then the one Saleor instance that installed the
App. ``None`` means write-back is not configured: work stays queued, nothing is lost.
"""

from __future__ import annotations

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.compat import plugin_configuration
from saleor_crm_plugin.core.saleor_api import SaleorClient, normalize_api_url


def get_saleor_client() -> SaleorClient | None:
    if crm_settings.SALEOR_API_URL and crm_settings.SALEOR_APP_TOKEN:
        return SaleorClient(
            normalize_api_url(crm_settings.SALEOR_API_URL), crm_settings.SALEOR_APP_TOKEN
        )
    config = plugin_configuration()
    if config.get("saleor_api_url") and config.get("app_token"):
        return SaleorClient(normalize_api_url(config["saleor_api_url"]), config["app_token"])
    from saleor_crm_plugin.app.models import SaleorInstance
    from saleor_crm_plugin.app.registry import app_token

    instances = SaleorInstance.objects.exclude(auth_token_encrypted="")
    if crm_settings.SALEOR_API_URL:
        instances = instances.filter(saleor_api_url=normalize_api_url(crm_settings.SALEOR_API_URL))
    instance = instances.order_by("-registered_at").first()
    if instance is None:
        return None
    return SaleorClient(instance.saleor_api_url, app_token(instance))
