# The App service's middleware (``settings.MIDDLEWARE``), here rather than in the settings
# module so the WSGI handler can recognise it (``app/handler.py``) without importing settings.
APP_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
)
