"""The customer 360 types. Other domains add fields through ``graphql/extensions.py``."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import graphene
from graphql.error import GraphQLError
from promise import Promise

from saleor_crm_plugin.customers.models import Customer, OrderLine, OrderStatus
from saleor_crm_plugin.customers.models import Order as OrderModel
from saleor_crm_plugin.graphql.core.connection import (
    CountableConnection,
    connection_field,
    validate_page_args,
)
from saleor_crm_plugin.graphql.core.executor import ignores_info, money_of, or_none, shortcut
from saleor_crm_plugin.graphql.core.federation import EntityRef
from saleor_crm_plugin.graphql.core.permissions import (
    check_owner_or_permissions,
    is_owner,
    requester_of,
)
from saleor_crm_plugin.graphql.core.selection import (
    reads,
    selected_columns,
    surely_selected,
    surely_selected_arguments,
)
from saleor_crm_plugin.graphql.core.types import CrmMoney, money
from saleor_crm_plugin.graphql.customers.dataloaders import (
    ChannelStatsByCustomerIdLoader,
    CustomerByIdLoader,
    LinesByOrderIdLoader,
    OrdersPageByCustomerLoader,
    OrdersPageKey,
    ProductStatsLoader,
    WithLines,
    WithOrders,
    lines_loaded,
    orders_loaded,
    stats_loaded,
)
from saleor_crm_plugin.graphql.extensions import (
    CUSTOMER_FIELDS,
    ORDER_FIELDS,
    PRODUCT_FIELDS,
    mixins,
)
from saleor_crm_plugin.permissions import CUSTOMER_READ, ORDER_READ, PRODUCT_STATS_READ

# An order's or channel stats' currency, for ``money_of``.
_currency = attrgetter("currency")

CrmOrderStatus = graphene.Enum(
    "CrmOrderStatus", [(status.value, status.value) for status in OrderStatus]
)


class CrmCustomerChannelStats(graphene.ObjectType):
    channel_id = graphene.ID(required=True, description="Saleor Channel ID.")
    channel_slug = graphene.String(required=True)
    currency = graphene.String(required=True)
    order_count = graphene.Int(required=True, description="Orders that became sales.")
    total_spent = graphene.Field(
        CrmMoney, required=True, description="Money charged and kept (refunds deducted)."
    )
    total_refunded = graphene.Field(CrmMoney, required=True)
    first_order_at = graphene.DateTime()
    last_order_at = graphene.DateTime()

    class Meta:
        description = "Lifetime figures of a customer in one channel and currency."

    @staticmethod
    @reads("total_spent", "currency")
    @money_of("total_spent", _currency)
    @ignores_info
    def resolve_total_spent(root: Any, info: Any) -> Any:
        return money(root.total_spent, _currency(root))

    @staticmethod
    @reads("total_refunded", "currency")
    @money_of("total_refunded", _currency)
    @ignores_info
    def resolve_total_refunded(root: Any, info: Any) -> Any:
        return money(root.total_refunded, _currency(root))


def _order_of(line: OrderLine) -> OrderModel:
    """``line.order``, read from the relation cache the lines loader fills without going
    through Django's descriptor (three prices per line, 30 lines a customer 360); the
    descriptor still loads it when nothing was cached."""
    order = line._state.fields_cache.get("order")
    return order if order is not None else line.order


def _line_currency(line: OrderLine) -> str:
    """A line's prices' currency (its order's), for ``money_of``: ``_order_of`` inline (a
    call fewer per line)."""
    order = line._state.fields_cache.get("order")
    return (order if order is not None else line.order).currency


class CrmOrderLine(graphene.ObjectType):
    line_id = graphene.ID(required=True, description="Saleor OrderLine ID.")
    product_id = graphene.ID(description="Saleor Product ID.")
    variant_id = graphene.ID(description="Saleor ProductVariant ID.")
    product = graphene.Field(
        lambda: Product, description="The product, resolved by Saleor through a gateway."
    )
    product_name = graphene.String(required=True)
    variant_name = graphene.String(required=True)
    sku = graphene.String(required=True)
    quantity = graphene.Int(required=True)
    quantity_fulfilled = graphene.Int(required=True)
    quantity_refunded = graphene.Int(required=True)
    unit_price = graphene.Field(CrmMoney, required=True, description="Gross unit price.")
    unit_price_net = graphene.Field(CrmMoney, required=True)
    total_price = graphene.Field(CrmMoney, required=True, description="Gross line total.")

    @staticmethod
    @reads("saleor_line_id")
    @ignores_info
    def resolve_line_id(root: OrderLine, info: Any) -> str:
        return root.saleor_line_id

    @staticmethod
    @reads("product_id")
    @or_none("product_id")
    @ignores_info
    def resolve_product_id(root: OrderLine, info: Any) -> str | None:
        return root.product_id or None

    @staticmethod
    @reads("variant_id")
    @or_none("variant_id")
    @ignores_info
    def resolve_variant_id(root: OrderLine, info: Any) -> str | None:
        return root.variant_id or None

    @staticmethod
    @reads("product_id")
    def resolve_product(root: OrderLine, info: Any) -> EntityRef | None:
        if not root.product_id:
            return None
        return EntityRef("Product", root.product_id, _order_of(root).channel_slug or None)

    @staticmethod
    @reads("unit_price_gross")
    @money_of("unit_price_gross", _line_currency)
    @ignores_info
    def resolve_unit_price(root: OrderLine, info: Any) -> Any:
        return money(root.unit_price_gross, _line_currency(root))

    @staticmethod
    @reads("unit_price_net")
    @money_of("unit_price_net", _line_currency)
    @ignores_info
    def resolve_unit_price_net(root: OrderLine, info: Any) -> Any:
        return money(root.unit_price_net, _line_currency(root))

    @staticmethod
    @reads("total_price_gross")
    @money_of("total_price_gross", _line_currency)
    @ignores_info
    def resolve_total_price(root: OrderLine, info: Any) -> Any:
        return money(root.total_price_gross, _line_currency(root))


def _order_money(field: str) -> Any:
    @reads(field, "currency")
    @money_of(field, _currency)
    @ignores_info
    def resolver(root: OrderModel, info: Any) -> Any:
        return money(getattr(root, field), _currency(root))

    return resolver


class CrmOrder(*mixins(ORDER_FIELDS), graphene.ObjectType):
    order_id = graphene.ID(required=True, description="Saleor Order ID.")
    number = graphene.String(required=True)
    status = graphene.Field(CrmOrderStatus, required=True)
    charge_status = graphene.String(required=True, description="Saleor's OrderChargeStatusEnum.")
    channel_id = graphene.ID(required=True)
    channel_slug = graphene.String(required=True)
    currency = graphene.String(required=True)
    is_sale = graphene.Boolean(
        required=True, description="False for drafts, cancelled and expired orders."
    )
    voucher_code = graphene.String()
    total = graphene.Field(CrmMoney, description="Gross total.")
    total_net = graphene.Field(CrmMoney)
    subtotal = graphene.Field(CrmMoney, description="Gross subtotal.")
    shipping_price = graphene.Field(CrmMoney, description="Gross shipping price.")
    total_charged = graphene.Field(CrmMoney, required=True)
    total_refunded = graphene.Field(CrmMoney, required=True)
    created_at = graphene.DateTime(required=True)
    paid_at = graphene.DateTime()
    fulfilled_at = graphene.DateTime()
    cancelled_at = graphene.DateTime()
    lines = graphene.List(graphene.NonNull(CrmOrderLine), required=True)
    customer = graphene.Field(lambda: CrmCustomer, description="Null for unlinked guest orders.")

    class Meta:
        interfaces = (graphene.relay.Node,)
        description = "An order as the CRM projected it from Saleor's events."

    resolve_total = _order_money("total_gross")
    resolve_total_net = _order_money("total_net")
    resolve_subtotal = _order_money("subtotal_gross")
    resolve_shipping_price = _order_money("shipping_gross")
    resolve_total_charged = _order_money("total_charged")
    resolve_total_refunded = _order_money("total_refunded")

    @staticmethod
    @reads("saleor_order_id")
    @ignores_info
    def resolve_order_id(root: OrderModel, info: Any) -> str:
        return root.saleor_order_id

    @staticmethod
    @reads("voucher_code")
    @or_none("voucher_code")
    @ignores_info
    def resolve_voucher_code(root: OrderModel, info: Any) -> str | None:
        return root.voucher_code or None

    @staticmethod
    # Line prices read their order's currency, a line's product its channel slug.
    @reads("id", "currency", "channel_slug")
    @shortcut(lines_loaded)  # lines read with the page: no ResolveInfo (10 a customer 360)
    def resolve_lines(root: OrderModel, info: Any) -> list[OrderLine] | Promise:
        lines = lines_loaded(root)
        if lines is not None:
            return lines
        return LinesByOrderIdLoader(info.context, selected_columns(info)).lines_of(root)

    @staticmethod
    @reads("customer_id")
    def resolve_customer(root: OrderModel, info: Any) -> Any:
        if root.customer_id is None:
            return None
        return (
            CustomerByIdLoader(info.context, selected_columns(info))
            .load(root.customer_id)
            .then(lambda customer: readable_customer(info, customer))
        )


class CrmOrderCountableConnection(CountableConnection):
    class Meta:
        node = CrmOrder


OrdersPageByCustomerLoader.connection_type = CrmOrderCountableConnection


_NODE_LINES = ("edges", "node", "lines")
_ORDERS_NODE = ("orders", "edges", "node")
_ORDERS_LINES = ("orders", "edges", "node", "lines")


def orders_page_asked(info: Any, requester: Any) -> WithOrders | None:
    """What ``CrmCustomer.orders`` will ask for below ``info``'s field (``me``, read for
    ``requester``'s own customer), as ``resolve_orders`` computes it, when it surely asks
    for a first page (no cursor) whose arguments are valid; ``None`` otherwise (then the
    field reads its page as before, and reports what is wrong with its arguments)."""
    args = surely_selected_arguments(info, "orders")
    if args is None or args.get("after") or args.get("before"):
        return None
    try:
        validate_page_args(args, "orders")
    except GraphQLError:
        return None
    lines = None
    if surely_selected(info, _ORDERS_LINES):
        lines = WithLines(selected_columns(info, _ORDERS_LINES))
    return WithOrders(
        args.get("first"),
        args.get("last"),
        args.get("channel"),
        requester.has_perm(ORDER_READ),
        selected_columns(info, _ORDERS_NODE),
        lines,
    )


class CrmCustomer(*mixins(CUSTOMER_FIELDS), graphene.ObjectType):
    user_id = graphene.ID(description="Saleor User ID; null for a guest known by e-mail only.")
    user = graphene.Field(
        lambda: User, description="The Saleor user, resolved by Saleor through a gateway."
    )
    email = graphene.String(required=True, description="Empty once the customer is erased.")
    first_name = graphene.String(required=True)
    last_name = graphene.String(required=True)
    is_guest = graphene.Boolean(required=True)
    is_active = graphene.Boolean()
    language_code = graphene.String(required=True)
    country_code = graphene.String(required=True)
    date_joined = graphene.DateTime()
    erased_at = graphene.DateTime(description="When Saleor deleted the customer (GDPR).")
    order_count = graphene.Int(required=True, description="Orders that became sales.")
    first_order_at = graphene.DateTime()
    last_order_at = graphene.DateTime()
    channel_stats = graphene.List(
        graphene.NonNull(CrmCustomerChannelStats),
        required=True,
        description="Lifetime figures per channel and currency.",
    )
    orders = connection_field(
        CrmOrderCountableConnection,
        channel=graphene.String(description="Slug of a channel to restrict the orders to."),
        description=(
            "The customer's orders, newest first. Drafts are listed only to staff with "
            "MANAGE_ORDERS. Requires the customer's own token or MANAGE_ORDERS."
        ),
    )

    class Meta:
        interfaces = (graphene.relay.Node,)
        description = (
            "A shopper as the CRM knows them (customer 360). Readable by the customer "
            "themselves or by staff and apps with MANAGE_USERS."
        )

    @staticmethod
    @reads("saleor_user_id")
    @ignores_info
    def resolve_user_id(root: Customer, info: Any) -> str | None:
        return root.saleor_user_id

    @staticmethod
    @reads("saleor_user_id")
    @ignores_info
    def resolve_user(root: Customer, info: Any) -> EntityRef | None:
        return EntityRef("User", root.saleor_user_id) if root.saleor_user_id else None

    @staticmethod
    @reads("saleor_user_id")
    @ignores_info
    def resolve_is_guest(root: Customer, info: Any) -> bool:
        return root.is_guest

    @staticmethod
    @reads("id")
    @shortcut(stats_loaded)  # stats read with the customer (``me``): no ResolveInfo, no promise
    def resolve_channel_stats(root: Customer, info: Any) -> Any:
        stats = stats_loaded(root)
        if stats is not None:
            return stats
        return ChannelStatsByCustomerIdLoader(info.context, selected_columns(info)).load(root.pk)

    @staticmethod
    @reads("id", "saleor_user_id")
    def resolve_orders(root: Customer, info: Any, channel: str | None = None, **args: Any) -> Any:
        requester = requester_of(info)
        check_owner_or_permissions(requester, root.saleor_user_id, (ORDER_READ,))
        include_drafts = requester.has_perm(ORDER_READ)
        key = OrdersPageKey(
            customer_id=root.pk,
            first=args.get("first"),
            last=args.get("last"),
            after=args.get("after"),
            before=args.get("before"),
            channel=channel,
            include_drafts=include_drafts,
        )
        columns = selected_columns(info, ("edges", "node"))
        lines = None
        if surely_selected(info, _NODE_LINES):
            # The lines come with the page (fewer queries, no promise per order).
            lines = WithLines(selected_columns(info, _NODE_LINES))
        if not key.after and not key.before:
            asked = WithOrders(key.first, key.last, channel, include_drafts, columns, lines)
            page = orders_loaded(root, asked)
            if page is not None:  # read with the customer (``me``): no promise
                return page
        if lines is not None:
            return OrdersPageByCustomerLoader(info.context, columns, lines).load(key)
        return OrdersPageByCustomerLoader(info.context, columns).load(key)


class CrmCustomerCountableConnection(CountableConnection):
    class Meta:
        node = CrmCustomer


class CrmProductStats(graphene.ObjectType):
    order_count = graphene.Int(required=True, description="Sales containing the product.")
    customer_count = graphene.Int(required=True, description="Distinct known buyers.")
    units_sold = graphene.Int(required=True)
    units_refunded = graphene.Int(required=True)


class CrmProduct(*mixins(PRODUCT_FIELDS), graphene.ObjectType):
    product_id = graphene.ID(required=True, description="Saleor Product ID.")
    channel = graphene.String(description="Channel slug the figures are restricted to.")
    stats = graphene.Field(CrmProductStats, description="Sales figures. Requires MANAGE_PRODUCTS.")

    class Meta:
        description = "What the CRM knows about a Saleor product (in one channel, if given)."

    @staticmethod
    @ignores_info
    def resolve_product_id(root: EntityRef, info: Any) -> str:
        return root.id

    @staticmethod
    def resolve_channel(root: EntityRef, info: Any) -> str | None:
        return root.channel

    @staticmethod
    def resolve_stats(root: EntityRef, info: Any) -> Promise:
        from saleor_crm_plugin.graphql.core.permissions import check_permissions

        check_permissions(requester_of(info), (PRODUCT_STATS_READ,))
        return ProductStatsLoader(info.context).load((root.id, root.channel))


# -- Federation entities: Saleor's types, extended with the CRM's view of them ---------------


def readable_customer(
    info: Any, customer: Customer | None, user_id: str | None = None
) -> Customer | None:
    """Gate for every path to a CrmCustomer: the customer themselves, or MANAGE_USERS. The
    answer for a missing row is the same as for someone else's, so ids cannot be probed."""
    owner_id = customer.saleor_user_id if customer is not None else user_id
    check_owner_or_permissions(requester_of(info), owner_id, (CUSTOMER_READ,))
    return customer


def readable_order(info: Any, order: OrderModel | None) -> OrderModel | None:
    """Gate for every path to a CrmOrder by ID: its buyer, or MANAGE_ORDERS (a missing order
    answers like someone else's)."""
    requester = requester_of(info)
    if order is None or not is_owner(requester, order.saleor_user_id or None):
        check_owner_or_permissions(requester, None, (ORDER_READ,))
    return order


class User(graphene.ObjectType):
    federation_key = "id"

    id = graphene.ID(required=True)
    crm = graphene.Field(
        CrmCustomer,
        description=(
            "The CRM profile of this user (customer 360). Requires the user's own token or "
            "MANAGE_USERS."
        ),
    )

    @staticmethod
    def resolve_crm(root: EntityRef, info: Any) -> Promise:
        from saleor_crm_plugin.graphql.customers.dataloaders import CustomerByUserIdLoader

        return (
            CustomerByUserIdLoader(info.context, selected_columns(info))
            .load(root.id)
            .then(lambda customer: readable_customer(info, customer, root.id))
        )


class Order(graphene.ObjectType):
    federation_key = "id"

    id = graphene.ID(required=True)
    crm = graphene.Field(
        CrmOrder,
        description="The CRM's view of this order. Requires the buyer's token or MANAGE_ORDERS.",
    )

    @staticmethod
    def resolve_crm(root: EntityRef, info: Any) -> Promise:
        from saleor_crm_plugin.graphql.customers.dataloaders import OrderBySaleorIdLoader

        return (
            OrderBySaleorIdLoader(info.context)
            .load(root.id)
            .then(lambda order: readable_order(info, order))
        )


class Product(graphene.ObjectType):
    federation_key = "id channel"

    id = graphene.ID(required=True)
    channel = graphene.String()
    crm = graphene.Field(CrmProduct, description="The CRM's view of this product.")

    @staticmethod
    def resolve_crm(root: EntityRef, info: Any) -> EntityRef:
        return root


ENTITY_TYPES = [User, Product, Order]
