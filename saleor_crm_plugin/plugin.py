"""Plugin mode: the entry point Saleor loads (group ``saleor.plugins``).

Saleor adds the entry point *name* (``saleor_crm_plugin``) to ``INSTALLED_APPS`` so our
migrations run, and instantiates this class per request and channel, so ``__init__`` stays
cheap. All hooks live in ``events.from_plugin.CRMPluginHooks``; this module only adds Saleor's
base class and the configuration form. It is the only module that imports Saleor.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from saleor.plugins.base_plugin import BasePlugin, ConfigurationTypeField

from saleor_crm_plugin.events.from_plugin import CRMPluginHooks
from saleor_crm_plugin.plugin_config import CONFIG_FIELDS, PLUGIN_ID, validate_configuration

logger = logging.getLogger(__name__)

_TYPES = {
    "string": ConfigurationTypeField.STRING,
    "multiline": ConfigurationTypeField.MULTILINE,
    "boolean": ConfigurationTypeField.BOOLEAN,
    "secret": ConfigurationTypeField.SECRET,
}


class CRMPlugin(CRMPluginHooks, BasePlugin):
    PLUGIN_ID = PLUGIN_ID
    PLUGIN_NAME = "Saleor CRM"
    PLUGIN_DESCRIPTION = (
        "Loyalty, RFM segments, recommendations, returns and reviews. Records order and "
        "customer events into the CRM inbox; the work runs in Celery."
    )
    # Global: per-channel plugins get customer_* hooks zero or several times.
    CONFIGURATION_PER_CHANNEL = False
    DEFAULT_ACTIVE = True
    CONFIG_STRUCTURE = {
        field.name: {
            "type": _TYPES[field.type],
            "label": field.label,
            "help_text": field.help_text,
        }
        for field in CONFIG_FIELDS
    }
    DEFAULT_CONFIGURATION = [{"name": f.name, "value": f.default} for f in CONFIG_FIELDS]

    @classmethod
    def validate_plugin_configuration(cls, plugin_configuration: Any, **kwargs: Any) -> None:
        values = {item["name"]: item["value"] for item in plugin_configuration.configuration}
        errors = validate_configuration(values)
        if errors:
            raise ValidationError(
                {name: ValidationError(message, code="invalid") for name, message in errors.items()}
            )

    def webhook(self, request: Any, path: str, previous_value: Any) -> Any:
        """``/plugins/global/saleor-crm-plugin/<path>``: the CRM's HTTP API in plugin mode."""
        from saleor_crm_plugin.plugin_http import handle_plugin_request

        try:
            return handle_plugin_request(request, path, previous_value)
        except Exception:  # never let a CRM bug surface as a Saleor error page
            logger.exception("CRM plugin HTTP handler failed")
            return JsonResponse({"errors": [{"message": "Internal error."}]}, status=500)
