"""Saleor's permission codes, which gate every operator field and mutation of the CRM.

Saleor's permission set is closed (``saleor/permission/enums.py``): an App cannot define new
ones, and operators already manage these in the Dashboard. So each CRM action maps onto the
Saleor permission an operator needs for the equivalent Saleor data, e.g. reading a customer's
CRM profile needs ``MANAGE_USERS``, as reading the customer in Saleor does.
"""

from __future__ import annotations

import enum


class SaleorPermission(enum.StrEnum):
    """The codes exactly as Saleor's ``PermissionEnum`` spells them (and as JWT claims and
    ``me { userPermissions { code } }`` carry them)."""

    MANAGE_USERS = "MANAGE_USERS"
    MANAGE_STAFF = "MANAGE_STAFF"
    MANAGE_ORDERS = "MANAGE_ORDERS"
    MANAGE_PRODUCTS = "MANAGE_PRODUCTS"
    MANAGE_GIFT_CARD = "MANAGE_GIFT_CARD"
    MANAGE_DISCOUNTS = "MANAGE_DISCOUNTS"
    MANAGE_APPS = "MANAGE_APPS"
    MANAGE_SETTINGS = "MANAGE_SETTINGS"
    MANAGE_CHANNELS = "MANAGE_CHANNELS"
    MANAGE_PAGES = "MANAGE_PAGES"
    MANAGE_CHECKOUTS = "MANAGE_CHECKOUTS"
    HANDLE_PAYMENTS = "HANDLE_PAYMENTS"
    MANAGE_PLUGINS = "MANAGE_PLUGINS"


# CRM actions -> the Saleor permission that grants them. Domains add their actions here.
CUSTOMER_READ = SaleorPermission.MANAGE_USERS
ORDER_READ = SaleorPermission.MANAGE_ORDERS
PRODUCT_STATS_READ = SaleorPermission.MANAGE_PRODUCTS
# RFM: segments are customer data, so reading and managing them follows MANAGE_USERS.
RFM_READ = SaleorPermission.MANAGE_USERS
RFM_MANAGE = SaleorPermission.MANAGE_USERS
# Loyalty: adjusting a customer's points and reading the program (settings, liability) are
# customer-management tasks in Saleor's terms.
LOYALTY_ADJUST = SaleorPermission.MANAGE_USERS
LOYALTY_PROGRAM_READ = SaleorPermission.MANAGE_USERS
# Editing the program follows reading it: the same staff run the program in the Dashboard.
LOYALTY_PROGRAM_MANAGE = SaleorPermission.MANAGE_USERS
RECOMMENDATIONS_MANAGE = SaleorPermission.MANAGE_PRODUCTS
