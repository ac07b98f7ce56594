"""The App service's Celery application (plugin mode uses Saleor's own)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saleor_crm_plugin.app.settings")

app = Celery("saleor_crm_plugin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["saleor_crm_plugin"])
