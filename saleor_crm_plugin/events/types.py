"""The one internal event both adapters produce.

Plugin hooks (model instances) and webhooks (subscription or legacy JSON) are translated into a
``CrmEvent`` carrying immutable snapshots. Everything downstream (inbox, projection, loyalty,
RFM, ...) reads only these types, so each rule is written and tested once.

Snapshots are *partial* on purpose: a legacy payload has no payment totals and no user id, a
plugin hook may have no lines. ``None`` means "this event does not say", never "zero".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from saleor_crm_plugin.core.money import to_decimal
from saleor_crm_plugin.core.timeutils import isoformat, parse_datetime, version_stamp


class EventKind(StrEnum):
    """Saleor's event names, spelled as in the ``Saleor-Event`` header."""

    ORDER_CREATED = "order_created"
    ORDER_CONFIRMED = "order_confirmed"
    ORDER_PAID = "order_paid"
    ORDER_FULLY_PAID = "order_fully_paid"
    ORDER_REFUNDED = "order_refunded"
    ORDER_FULLY_REFUNDED = "order_fully_refunded"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_FULFILLED = "order_fulfilled"
    ORDER_UPDATED = "order_updated"
    CUSTOMER_CREATED = "customer_created"
    CUSTOMER_UPDATED = "customer_updated"
    CUSTOMER_DELETED = "customer_deleted"

    @property
    def is_order(self) -> bool:
        return self.value.startswith("order_")

    @property
    def is_customer(self) -> bool:
        return self.value.startswith("customer_")


ORDER_EVENTS = frozenset(k for k in EventKind if k.is_order)
CUSTOMER_EVENTS = frozenset(k for k in EventKind if k.is_customer)


class EventSource(StrEnum):
    SUBSCRIPTION = "subscription"  # App webhook with a subscription query (our manifest)
    LEGACY = "legacy"  # query-less webhook: snake_case, no user id, no payment totals
    PLUGIN = "plugin"  # in-process hook with a Saleor model instance
    BACKFILL = "backfill"  # read from Saleor's GraphQL API by ``saleor-crm backfill``


# When two snapshots carry the same ``updatedAt`` the richer source wins the tie; legacy
# payloads lose because they know less (no payment totals, no user id).
SOURCE_RANK = {
    EventSource.LEGACY: 1,
    EventSource.PLUGIN: 2,
    EventSource.SUBSCRIPTION: 3,
    EventSource.BACKFILL: 3,
}


@dataclass(frozen=True, slots=True)
class OrderLineSnapshot:
    saleor_line_id: str
    product_name: str
    variant_name: str
    quantity: int
    unit_price_gross: Decimal
    unit_price_net: Decimal
    total_price_gross: Decimal
    variant_id: str | None = None
    product_id: str | None = None
    product_slug: str | None = None
    category_id: str | None = None
    category_slug: str | None = None
    # Product type (Saleor's ``productType``): an item feature for cold start. None = unknown
    # (older captures, legacy webhooks and plugin hooks do not carry it).
    product_type_id: str | None = None
    product_type_slug: str | None = None
    # Sorted "attribute-slug:value-slug" strings (Saleor's product attributes), an item feature;
    # None = unknown (older captures, legacy webhooks and plugin hooks do not carry them).
    attributes: tuple[str, ...] | None = None
    sku: str | None = None
    quantity_fulfilled: int | None = None
    quantity_refunded: int | None = None


def _builder(cls: type[Any]) -> Callable[..., Any]:
    """A constructor for the frozen slotted dataclass ``cls`` with ``cls(...)``'s signature
    that fills the slots as plain attribute stores.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, and that
    was most of building a line (~18 per order, every webhook) and a fifth of an order. The
    builder is a plain class with the same slots in the same order and an ordinary
    ``__init__``; the new instance then takes ``cls`` as its class, which CPython allows
    between classes of identical layout. What comes out is a ``cls`` instance equal to and
    indistinguishable from ``cls(...)``'s (frozen, same hash, repr, pickling), in a third of
    the CPU. Only for dataclasses without ``__post_init__`` or default factories: checked."""
    names = tuple(field.name for field in fields(cls))
    if cls.__slots__ != names or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} cannot be built by slot stores")
    defaults: dict[str, Any] = {}
    params = []
    for field in fields(cls):
        if field.default_factory is not MISSING or not field.init:
            raise TypeError(f"{cls.__name__}.{field.name} cannot be built by slot stores")
        if field.default is MISSING:
            params.append(field.name)
        else:
            defaults[f"_default_{field.name}"] = field.default
            params.append(f"{field.name}=_default_{field.name}")
    # The last store gives the instance its class: ``type.__call__`` returns what ``__new__``
    # made, whatever ``__init__`` did to it, so calling the builder class is the constructor.
    stores = "".join(f"    self.{name} = {name}\n" for name in names)
    namespace: dict[str, Any] = {**defaults, "cls": cls}
    exec(f"def __init__(self, {', '.join(params)}):\n{stores}    self.__class__ = cls\n", namespace)
    init = namespace["__init__"]
    return type(f"_{cls.__name__}Builder", (), {"__slots__": names, "__init__": init})


# ``OrderLineSnapshot(...)`` by slot stores: every field positionally in declaration order, or
# by keyword. A wrong count raises ``TypeError`` as the class would.
new_line = _builder(OrderLineSnapshot)
_LINE_FIELD_COUNT = len(fields(OrderLineSnapshot))


def line_snapshot(*values: Any) -> OrderLineSnapshot:
    """``OrderLineSnapshot(*values)``: every field, positionally, in declaration order.

    The count is checked (``ValueError``), so a field added to the class fails loudly at the
    callers that spell every field."""
    if len(values) != _LINE_FIELD_COUNT:
        raise ValueError(f"OrderLineSnapshot has {_LINE_FIELD_COUNT} fields, got {len(values)}")
    return new_line(*values)


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """What Saleor has collected. ``total_charged`` is already net of refunds (transaction flow)."""

    total_charged: Decimal
    total_refunded: Decimal
    charge_status: str | None = None
    authorize_status: str | None = None
    total_granted_refund: Decimal | None = None
    inferred: bool = False  # derived from the event name (legacy payloads carry no amounts)


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    saleor_order_id: str
    number: str
    channel_id: str
    currency: str
    status: str
    created_at: datetime
    updated_at: datetime | None = None
    channel_slug: str | None = None
    origin: str | None = None
    user_id: str | None = None
    user_email: str = ""
    user_first_name: str | None = None
    user_last_name: str | None = None
    total_gross: Decimal | None = None
    total_net: Decimal | None = None
    total_tax: Decimal | None = None
    subtotal_gross: Decimal | None = None
    shipping_gross: Decimal | None = None
    voucher_code: str | None = None
    lines: tuple[OrderLineSnapshot, ...] | None = None
    payment: PaymentSnapshot | None = None
    paid_at: datetime | None = None
    fulfilled_at: datetime | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    saleor_user_id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_active: bool | None = None
    is_confirmed: bool | None = None
    date_joined: datetime | None = None
    updated_at: datetime | None = None
    language_code: str | None = None
    country_code: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class CrmEvent:
    kind: EventKind
    source: EventSource
    object_id: str
    issued_at: datetime
    saleor_api_url: str = ""
    order: OrderSnapshot | None = None
    customer: CustomerSnapshot | None = None
    dedupe_key: str = ""

    @property
    def version_at(self) -> datetime:
        """Saleor's ``updatedAt`` where the payload has it; legacy payloads only have issue time."""
        snapshot_updated = None
        if self.order is not None:
            snapshot_updated = self.order.updated_at
        elif self.customer is not None:
            snapshot_updated = self.customer.updated_at
        return snapshot_updated or self.issued_at

    @property
    def version(self) -> str:
        """Total order over snapshots of one object: newest ``updatedAt``, then richer source,
        then the dedupe key. Last-writer-wins on this key is what makes the projection
        independent of delivery order."""
        return f"{version_stamp(self.version_at)}|{SOURCE_RANK[self.source]}|{self.dedupe_key}"

    @property
    def subject_user_id(self) -> str | None:
        if self.customer is not None:
            return self.customer.saleor_user_id
        if self.order is not None:
            return self.order.user_id
        return None

    @property
    def subject_email(self) -> str:
        if self.customer is not None:
            return self.customer.email or ""
        if self.order is not None:
            return self.order.user_email
        return ""

    def with_dedupe_key(self, key: str) -> CrmEvent:
        return new_event(
            kind=self.kind,
            source=self.source,
            object_id=self.object_id,
            issued_at=self.issued_at,
            saleor_api_url=self.saleor_api_url,
            order=self.order,
            customer=self.customer,
            dedupe_key=key,
        )

    # -- serialisation (the inbox stores events as JSON) -------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "source": self.source.value,
            "object_id": self.object_id,
            "issued_at": isoformat(self.issued_at),
            "saleor_api_url": self.saleor_api_url,
            "dedupe_key": self.dedupe_key,
            "order": _order_to_dict(self.order) if self.order else None,
            "customer": _customer_to_dict(self.customer) if self.customer else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrmEvent:
        issued_at = parse_datetime(data["issued_at"])
        assert issued_at is not None
        return cls(
            kind=EventKind(data["kind"]),
            source=EventSource(data["source"]),
            object_id=data["object_id"],
            issued_at=issued_at,
            saleor_api_url=data.get("saleor_api_url", ""),
            dedupe_key=data.get("dedupe_key", ""),
            order=_order_from_dict(data["order"]) if data.get("order") else None,
            customer=_customer_from_dict(data["customer"]) if data.get("customer") else None,
        )


# The other snapshots and the event by slot stores, for the translations that build one per
# webhook (see ``_builder``); same signatures as the classes.
new_payment = _builder(PaymentSnapshot)
new_order = _builder(OrderSnapshot)
new_customer = _builder(CustomerSnapshot)
new_event = _builder(CrmEvent)


def stable_hash(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _line_to_dict(line: OrderLineSnapshot) -> dict[str, Any]:
    return {
        "saleor_line_id": line.saleor_line_id,
        "product_name": line.product_name,
        "variant_name": line.variant_name,
        "quantity": line.quantity,
        "unit_price_gross": _dec(line.unit_price_gross),
        "unit_price_net": _dec(line.unit_price_net),
        "total_price_gross": _dec(line.total_price_gross),
        "variant_id": line.variant_id,
        "product_id": line.product_id,
        "product_slug": line.product_slug,
        "category_id": line.category_id,
        "category_slug": line.category_slug,
        "product_type_id": line.product_type_id,
        "product_type_slug": line.product_type_slug,
        "attributes": list(line.attributes) if line.attributes is not None else None,
        "sku": line.sku,
        "quantity_fulfilled": line.quantity_fulfilled,
        "quantity_refunded": line.quantity_refunded,
    }


# Stored amounts are the strings ``_dec`` wrote; the same prices recur on every event of an
# order and across orders, and a Decimal is immutable, so each text is converted once.
_AMOUNTS: dict[object, Decimal | None] = {}
_AMOUNTS_MAX = 50_000


def _amount(value: object) -> Decimal | None:
    if type(value) is not str:
        return to_decimal(value)
    known = _AMOUNTS.get(value, _AMOUNTS)
    if known is not _AMOUNTS:
        return known  # type: ignore[return-value]
    result = to_decimal(value)
    if len(_AMOUNTS) >= _AMOUNTS_MAX:
        _AMOUNTS.clear()
    _AMOUNTS[value] = result
    return result


def _line_from_dict(data: dict[str, Any]) -> OrderLineSnapshot:
    return line_snapshot(  # OrderLineSnapshot's fields in declaration order
        data["saleor_line_id"],
        data["product_name"],
        data["variant_name"],
        data["quantity"],
        _amount(data["unit_price_gross"]),
        _amount(data["unit_price_net"]),
        _amount(data["total_price_gross"]),
        data.get("variant_id"),
        data.get("product_id"),
        data.get("product_slug"),
        data.get("category_id"),
        data.get("category_slug"),
        data.get("product_type_id"),
        data.get("product_type_slug"),
        tuple(data["attributes"]) if data.get("attributes") is not None else None,
        data.get("sku"),
        data.get("quantity_fulfilled"),
        data.get("quantity_refunded"),
    )


def _payment_to_dict(payment: PaymentSnapshot) -> dict[str, Any]:
    return {
        "total_charged": _dec(payment.total_charged),
        "total_refunded": _dec(payment.total_refunded),
        "charge_status": payment.charge_status,
        "authorize_status": payment.authorize_status,
        "total_granted_refund": _dec(payment.total_granted_refund),
        "inferred": payment.inferred,
    }


def _payment_from_dict(data: dict[str, Any]) -> PaymentSnapshot:
    return PaymentSnapshot(
        total_charged=_amount(data["total_charged"]),  # type: ignore[arg-type]
        total_refunded=_amount(data["total_refunded"]),  # type: ignore[arg-type]
        charge_status=data.get("charge_status"),
        authorize_status=data.get("authorize_status"),
        total_granted_refund=to_decimal(data.get("total_granted_refund")),
        inferred=bool(data.get("inferred", False)),
    )


_ORDER_AMOUNTS = ("total_gross", "total_net", "total_tax", "subtotal_gross", "shipping_gross")
_ORDER_DATES = ("created_at", "updated_at", "paid_at", "fulfilled_at", "cancelled_at")
_ORDER_TEXT = (
    "saleor_order_id",
    "number",
    "channel_id",
    "currency",
    "status",
    "channel_slug",
    "origin",
    "user_id",
    "user_email",
    "user_first_name",
    "user_last_name",
    "voucher_code",
)


def _order_to_dict(order: OrderSnapshot) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(order, name) for name in _ORDER_TEXT}
    data.update({name: _dec(getattr(order, name)) for name in _ORDER_AMOUNTS})
    data.update({name: isoformat(getattr(order, name)) for name in _ORDER_DATES})
    data["lines"] = None if order.lines is None else [_line_to_dict(x) for x in order.lines]
    data["payment"] = _payment_to_dict(order.payment) if order.payment else None
    return data


def _order_from_dict(data: dict[str, Any]) -> OrderSnapshot:
    kwargs: dict[str, Any] = {name: data.get(name) for name in _ORDER_TEXT}
    kwargs["user_email"] = kwargs["user_email"] or ""
    kwargs.update({name: _amount(data.get(name)) for name in _ORDER_AMOUNTS})
    kwargs.update({name: parse_datetime(data.get(name)) for name in _ORDER_DATES})
    lines = data.get("lines")
    kwargs["lines"] = None if lines is None else tuple(_line_from_dict(x) for x in lines)
    kwargs["payment"] = _payment_from_dict(data["payment"]) if data.get("payment") else None
    return new_order(**kwargs)


def _customer_to_dict(customer: CustomerSnapshot) -> dict[str, Any]:
    return {
        "saleor_user_id": customer.saleor_user_id,
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "is_active": customer.is_active,
        "is_confirmed": customer.is_confirmed,
        "date_joined": isoformat(customer.date_joined),
        "updated_at": isoformat(customer.updated_at),
        "language_code": customer.language_code,
        "country_code": customer.country_code,
        "metadata": None if customer.metadata is None else dict(customer.metadata),
    }


def _customer_from_dict(data: dict[str, Any]) -> CustomerSnapshot:
    return CustomerSnapshot(
        saleor_user_id=data["saleor_user_id"],
        email=data.get("email"),
        first_name=data.get("first_name"),
        last_name=data.get("last_name"),
        is_active=data.get("is_active"),
        is_confirmed=data.get("is_confirmed"),
        date_joined=parse_datetime(data.get("date_joined")),
        updated_at=parse_datetime(data.get("updated_at")),
        language_code=data.get("language_code"),
        country_code=data.get("country_code"),
        metadata=None if data.get("metadata") is None else dict(data["metadata"]),
    )
