"""Test settings: the App settings on the real PostgreSQL (``TEST_DATABASE_URL``)."""

import os

os.environ.setdefault(
    "DATABASE_URL",
    os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/saleor_crm"),
)

from saleor_crm_plugin.app.settings import *  # noqa: F403

SECRET_KEY = "tests-secret-key"
DEBUG = False
ALLOWED_HOSTS = ["*"]
CRM_ALLOWED_SALEOR_URLS = ["http://127.0.0.1:8000/graphql/"]
CELERY_BROKER_URL = ""
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Drains start at once: a kicked drain waiting for a fuller batch would only slow tests down.
CRM_INBOX_LINGER_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False}
