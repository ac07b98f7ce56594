from django.apps import AppConfig
from django.conf import settings


class CRMConfig(AppConfig):
    name = "saleor_crm_plugin"
    label = "saleor_crm_plugin"
    verbose_name = "Saleor CRM"
    # Pinned so the host project's DEFAULT_AUTO_FIELD (Saleor uses AutoField) never makes
    # ``makemigrations`` want to rewrite our migrations.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from saleor_crm_plugin import (
            beat,
            checks,  # noqa: F401  (registers system checks)
        )

        beat.register_beat_schedule()
        if getattr(settings, "CRM_APP_MODE", False):
            # Bind shared tasks to the App's Celery app in every process (web and worker).
            from saleor_crm_plugin.app import celery  # noqa: F401
