"""Loaders so lists of customers (``crmCustomers``) cost a constant number of queries."""

from __future__ import annotations

from saleor_crm_plugin.graphql.core.dataloaders import DataLoader, group_by
from saleor_crm_plugin.loyalty import services
from saleor_crm_plugin.loyalty.models import LoyaltyAccount


class LoyaltyAccountsByCustomerIdLoader(DataLoader[int, list[LoyaltyAccount]]):
    context_key = "loyalty_accounts_by_customer_id"

    def batch_load(self, keys: list[int]) -> list[list[LoyaltyAccount]]:
        rows = (
            LoyaltyAccount.objects.filter(customer_id__in=keys)
            .select_related("customer")
            .order_by("customer_id", "channel_slug", "pk")
        )
        groups = group_by(rows, "customer_id")
        return [groups.get(key, []) for key in keys]


class LoyaltyAccountViewLoader(DataLoader[LoyaltyAccount, services.AccountView]):
    """Keyed by the account row itself (model instances hash by primary key)."""

    context_key = "loyalty_account_view"

    def batch_load(self, keys: list[LoyaltyAccount]) -> list[services.AccountView]:
        return services.account_views(keys)
