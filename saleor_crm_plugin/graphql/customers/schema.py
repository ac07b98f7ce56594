"""Customer 360 root fields. Resolvers only authorise and load; the projection is the data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import graphene
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from graphql.error import GraphQLError
from promise import Promise

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.graphql.core.connection import connection_field, paginate_queryset
from saleor_crm_plugin.graphql.core.federation import EntityRef
from saleor_crm_plugin.graphql.core.ids import resolve_global_id
from saleor_crm_plugin.graphql.core.permissions import (
    check_permissions,
    permission_required,
    requester_of,
)
from saleor_crm_plugin.graphql.customers.dataloaders import (
    CustomerByIdLoader,
    CustomerByUserIdLoader,
)
from saleor_crm_plugin.graphql.customers.types import (
    CrmCustomer,
    CrmCustomerCountableConnection,
    CrmProduct,
    readable_customer,
)
from saleor_crm_plugin.permissions import CUSTOMER_READ


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


class CrmCustomerFilterInput(graphene.InputObjectType):
    search = graphene.String(description="Part of the e-mail, first or last name.")
    is_guest = graphene.Boolean(description="Only guests (true) or only registered users.")


# Customers who never ordered sort as if they had ordered at the epoch: last when newest first.
_NEVER = Value(datetime(1970, 1, 1, tzinfo=UTC))
_NULLABLE_SORT_FIELDS = {"last_order_at", "first_order_at"}


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


def sort_customers(queryset: Any, sort_by: dict[str, Any] | None) -> tuple[Any, tuple[str, str]]:
    """Annotate the sort key as ``_sort`` so keyset cursors work for every field; the primary
    key breaks ties so the order is total."""
    field = sort_by["field"] if sort_by else CrmCustomerSortField.LAST_ORDER_AT.value
    descending = (sort_by["direction"] if sort_by else CrmSortDirection.DESC.value) == "DESC"
    key = Coalesce(F(field), _NEVER) if field in _NULLABLE_SORT_FIELDS else F(field)
    prefix = "-" if descending else ""
    return queryset.annotate(_sort=key), (f"{prefix}_sort", f"{prefix}pk")


class CustomerQueries(graphene.ObjectType):
    me = graphene.Field(
        CrmCustomer,
        description=(
            "The signed-in customer's CRM profile; null when anonymous or not known to the "
            "CRM yet (no order or account event seen)."
        ),
    )
    customer = graphene.Field(
        CrmCustomer,
        id=graphene.ID(description="CrmCustomer ID, or Saleor User ID."),
        email=graphene.String(description="E-mail of the customer (exact, case-insensitive)."),
        description=(
            "A customer's CRM profile by ID or e-mail. Requires MANAGE_USERS, except for the "
            "customer's own profile."
        ),
    )
    crm_customers = connection_field(
        CrmCustomerCountableConnection,
        filter=CrmCustomerFilterInput(),
        sort_by=CrmCustomerSortingInput(description="Default: last order, newest first."),
        description=(
            "Customers known to the CRM (erased ones excluded), e.g. the best customers of the "
            "store. Requires MANAGE_USERS."
        ),
    )
    crm_product = graphene.Field(
        CrmProduct,
        id=graphene.ID(required=True, description="Saleor Product ID."),
        channel=graphene.String(description="Slug of a channel to restrict figures to."),
        description="The CRM's view of a Saleor product.",
    )

    @staticmethod
    def resolve_me(root: Any, info: Any) -> Promise | None:
        requester = requester_of(info)
        if not requester.user_id:
            return None
        return CustomerByUserIdLoader(info.context).load(requester.user_id)

    @staticmethod
    def resolve_customer(
        root: Any, info: Any, id: str | None = None, email: str | None = None
    ) -> Promise | Customer | None:
        if (id is None) == (email is None):
            raise GraphQLError("Provide exactly one of `id` or `email`.")
        if email is not None:
            # Only operators search by e-mail: it would otherwise reveal who is a customer.
            check_permissions(requester_of(info), (CUSTOMER_READ,))
            customer = (
                Customer.objects.filter(email__iexact=email.strip(), erased_at__isnull=True)
                .order_by("saleor_user_id", "pk")
                .first()
            )
            return customer
        assert id is not None
        type_name, pk = resolve_global_id(id, ("CrmCustomer", "User"))
        if type_name == "User":
            return (
                CustomerByUserIdLoader(info.context)
                .load(id)
                .then(lambda customer: readable_customer(info, customer, id))
            )
        if not pk.isdigit():
            return readable_customer(info, None)
        return (
            CustomerByIdLoader(info.context)
            .load(int(pk))
            .then(lambda customer: readable_customer(info, customer))
        )

    @staticmethod
    @permission_required(CUSTOMER_READ)
    def resolve_crm_customers(
        root: Any,
        info: Any,
        filter: dict[str, Any] | None = None,
        sort_by: dict[str, Any] | None = None,
        **args: Any,
    ) -> Any:
        queryset = filter_customers(Customer.objects.not_erased(), filter)
        queryset, ordering = sort_customers(queryset, sort_by)
        return paginate_queryset(
            queryset,
            args,
            ordering=ordering,
            connection_type=CrmCustomerCountableConnection,
            field_name="crmCustomers",
        )

    @staticmethod
    def resolve_crm_product(root: Any, info: Any, id: str, channel: str | None = None) -> EntityRef:
        resolve_global_id(id, "Product")
        return EntityRef("Product", id, channel)
