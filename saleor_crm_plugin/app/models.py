from __future__ import annotations

from django.db import models


class SaleorInstance(models.Model):
    """A Saleor installation that installed the CRM App (the app-sdk calls this the APL).

    Webhook signatures are verified only against the JWKS of an instance stored here, so a
    request naming some other ``Saleor-Api-Url`` (with its own keys) is refused.
    """

    saleor_api_url = models.CharField(max_length=255, unique=True)
    domain = models.CharField(max_length=255, blank=True, default="")
    app_id = models.CharField(max_length=255, blank=True, default="")
    # Encrypted at rest with a key derived from CRM_ENCRYPTION_KEY / SECRET_KEY.
    auth_token_encrypted = models.TextField(blank=True, default="")
    jwks = models.JSONField(default=dict)
    jwks_fetched_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.saleor_api_url
