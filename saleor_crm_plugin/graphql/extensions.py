"""The one place where domains add fields to the shared CRM types.

Each list holds dotted paths of plain mixin classes (not ObjectTypes) declaring graphene fields
and their ``resolve_*`` methods; the shared types inherit them in list order. A domain adds one
line per type it extends, e.g. ``"saleor_crm_plugin.graphql.loyalty.types.CustomerLoyaltyFields"``.
A mixin module must not import ``graphql.customers.types`` at import time (use
``graphene.Field(lambda: ...)`` or a dotted string for the type) to avoid an import cycle.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

# Fields added to CrmCustomer (``me``, ``customer(id)``, ``User.crm`` through federation).
CUSTOMER_FIELDS: list[str] = []
# Fields added to CrmOrder (``orders`` connections, ``Order.crm`` through federation).
ORDER_FIELDS: list[str] = []
# Fields added to CrmProduct (``crmProduct``, ``Product.crm`` through federation).
PRODUCT_FIELDS: list[str] = []


def mixins(paths: list[str]) -> tuple[type, ...]:
    return tuple(import_string(path) for path in paths)
