"""Sorting of ``crmCustomers``: every sort ends with the primary key, so keyset cursors are
total even on ties."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import graphene
from django.db.models import F, Value
from django.db.models.functions import Coalesce


class CrmCustomerSortField(graphene.Enum):
    LAST_ORDER_AT = "last_order_at"
    FIRST_ORDER_AT = "first_order_at"
    ORDER_COUNT = "order_count"
    EMAIL = "email"
    CREATED_AT = "created_at"


class CrmSortDirection(graphene.Enum):
    ASC = "ASC"
    DESC = "DESC"


class CrmCustomerSortingInput(graphene.InputObjectType):
    field = CrmCustomerSortField(required=True)
    direction = CrmSortDirection(required=True)


# Customers who never ordered sort as if they had ordered at the epoch: last when newest first.
_NEVER = Value(datetime(1970, 1, 1, tzinfo=UTC))
_NULLABLE_SORT_FIELDS = {"last_order_at", "first_order_at"}


def sort_customers(queryset: Any, sort_by: dict[str, Any] | None) -> tuple[Any, tuple[str, str]]:
    """Annotate the sort key as ``_sort`` so keyset cursors work for every field; the primary
    key breaks ties so the order is total."""
    field = sort_by["field"] if sort_by else CrmCustomerSortField.LAST_ORDER_AT.value
    descending = (sort_by["direction"] if sort_by else CrmSortDirection.DESC.value) == "DESC"
    key = Coalesce(F(field), _NEVER) if field in _NULLABLE_SORT_FIELDS else F(field)
    prefix = "-" if descending else ""
    return queryset.annotate(_sort=key), (f"{prefix}_sort", f"{prefix}pk")
