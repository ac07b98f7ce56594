"""Filters of ``crmCustomers``."""

from __future__ import annotations

from typing import Any

import graphene
from django.db.models import Q


class CrmCustomerFilterInput(graphene.InputObjectType):
    search = graphene.String(description="Part of the e-mail, first or last name.")
    is_guest = graphene.Boolean(description="Only guests (true) or only registered users.")


def filter_customers(queryset: Any, filter: dict[str, Any] | None) -> Any:
    filter = filter or {}
    search = (filter.get("search") or "").strip()
    if search:
        queryset = queryset.filter(
            Q(email__icontains=search)
            | Q(first_name__icontains=search)
            | Q(last_name__icontains=search)
        )
    if filter.get("is_guest") is not None:
        queryset = queryset.filter(saleor_user_id__isnull=filter["is_guest"])
    return queryset
