"""Customer 360 root fields. Resolvers only authorise and load; the projection is the data."""

from __future__ import annotations

from typing import Any

import graphene
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
from saleor_crm_plugin.graphql.core.selection import selected_columns, surely_selected
from saleor_crm_plugin.graphql.customers.dataloaders import (
    CustomerByIdLoader,
    CustomerByUserIdLoader,
    OrderByIdLoader,
    OrderBySaleorIdLoader,
    WithStats,
)
from saleor_crm_plugin.graphql.customers.filters import CrmCustomerFilterInput, filter_customers
from saleor_crm_plugin.graphql.customers.sorters import CrmCustomerSortingInput, sort_customers
from saleor_crm_plugin.graphql.customers.types import (
    CrmCustomer,
    CrmCustomerCountableConnection,
    CrmOrder,
    CrmProduct,
    orders_page_asked,
    readable_customer,
    readable_order,
)
from saleor_crm_plugin.permissions import CUSTOMER_READ

_CHANNEL_STATS = ("channelStats",)


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
    crm_order = graphene.Field(
        CrmOrder,
        id=graphene.ID(required=True, description="Saleor Order ID, or CrmOrder ID."),
        description=(
            "The CRM's view of an order (e.g. for the Dashboard's order page). Requires the "
            "buyer's token or MANAGE_ORDERS."
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
        columns = selected_columns(info)
        variant: list[Any] = []
        if surely_selected(info, _CHANNEL_STATS):
            # The stats come with the customer: one statement, no promise for them.
            variant.append(WithStats(selected_columns(info, _CHANNEL_STATS)))
        orders = orders_page_asked(info, requester)
        if orders is not None:
            # So does the first page of orders, with its lines: the 360 in one statement.
            variant.append(orders)
        return CustomerByUserIdLoader(info.context, columns, *variant).load(requester.user_id)

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
                CustomerByUserIdLoader(info.context, selected_columns(info))
                .load(id)
                .then(lambda customer: readable_customer(info, customer, id))
            )
        if not pk.isdigit():
            return readable_customer(info, None)
        return (
            CustomerByIdLoader(info.context, selected_columns(info))
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
    def resolve_crm_order(root: Any, info: Any, id: str) -> Promise | None:
        type_name, pk = resolve_global_id(id, ("Order", "CrmOrder"))
        if type_name == "Order":
            loader = OrderBySaleorIdLoader(info.context).load(id)
        elif pk.isdigit():
            loader = OrderByIdLoader(info.context).load(int(pk))
        else:
            return readable_order(info, None)
        return loader.then(lambda order: readable_order(info, order))

    @staticmethod
    def resolve_crm_product(root: Any, info: Any, id: str, channel: str | None = None) -> EntityRef:
        resolve_global_id(id, "Product")
        return EntityRef("Product", id, channel)
