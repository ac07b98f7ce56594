"""The App's WSGI application (``saleor-crm serve``): ``get_wsgi_application`` with the
webhook's short path (``app/handler.py``), the GraphQL schema built up front and the start-up
heap settled (``core/heap.py``)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saleor_crm_plugin.app.settings")
django.setup(set_prefix=False)

from saleor_crm_plugin.app.handler import AppWSGIHandler  # noqa: E402  (needs the app registry)

application = AppWSGIHandler()

import saleor_crm_plugin.graphql.api  # noqa: E402, F401  (built now, frozen with the rest)
from saleor_crm_plugin.core import heap  # noqa: E402

heap.settle()
