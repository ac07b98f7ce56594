"""Plugin mode: translate Saleor model instances handed to plugin hooks into ``CrmEvent``.

This module must not import Saleor: it reads attributes by name, exactly those recorded from a
real Saleor 3.23 (``tests/contract/plugin-probe.json``), and reaches for related objects
(lines, channel, transactions) only defensively, because every such access is a query in
Saleor's request thread and a missing one must not break the hook.

``CRMPluginHooks`` holds the hooks themselves. Saleor marks all of them but ``order_confirmed``
deprecated, so this adapter stays thin: translate, store in the inbox, return
``previous_value``, never raise.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.core.money import ZERO, amount, to_decimal
from saleor_crm_plugin.core.timeutils import parse_datetime, version_stamp
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.types import (
    CrmEvent,
    CustomerSnapshot,
    EventKind,
    EventSource,
    OrderLineSnapshot,
    OrderSnapshot,
    PaymentSnapshot,
    stable_hash,
)

logger = logging.getLogger(__name__)

_MISSING = object()


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    """``getattr`` that also survives related-object lookups failing inside Saleor."""
    try:
        value = getattr(obj, name, _MISSING)
    except Exception:  # e.g. DoesNotExist on a deleted relation
        return default
    return default if value is _MISSING else value


def _upper(value: Any) -> str | None:
    return str(value).upper() if value else None


def _related(obj: Any, name: str) -> list[Any] | None:
    manager = _attr(obj, name)
    if manager is None:
        return None
    try:
        return list(manager.all())
    except Exception:
        logger.debug("Could not read %s of %r", name, obj, exc_info=True)
        return None


def _global(type_name: str, pk: Any) -> str | None:
    return None if pk in (None, "") else to_global_id(type_name, pk)


def _dedupe_key(kind: EventKind, object_id: str, updated_at: datetime | None) -> str:
    # The same hook can fire several times for one state (order_fully_paid repeats); the state
    # is identified by the object's updated_at, so those collapse into one inbox row.
    stamp = version_stamp(updated_at) if updated_at else uuid.uuid4().hex
    return stable_hash("plugin", kind.value, object_id, stamp)


def translate_order(kind: EventKind, order: Any, *, issued_at: datetime | None = None) -> CrmEvent:
    issued = issued_at or timezone.now()
    order_id = _global("Order", _attr(order, "id"))
    if not order_id:
        raise ValueError("Order without id.")
    updated_at = parse_datetime(_attr(order, "updated_at"))
    created_at = parse_datetime(_attr(order, "created_at")) or issued
    status = _upper(_attr(order, "status")) or "UNCONFIRMED"
    total_gross = to_decimal(_attr(order, "total_gross_amount"))
    charge_status = _upper(_attr(order, "charge_status"))
    refunded = _sum_attr(_related(order, "payment_transactions"), "refunded_value")
    if refunded is None and kind == EventKind.ORDER_FULLY_REFUNDED:
        refunded = total_gross
    payment = None
    charged = _attr(order, "total_charged_amount")
    if charged is not None:
        payment = PaymentSnapshot(
            total_charged=amount(charged),
            total_refunded=refunded if refunded is not None else ZERO,
            charge_status=charge_status,
            authorize_status=_upper(_attr(order, "authorize_status")),
            inferred=refunded is None,
        )
    channel = _attr(order, "channel")
    user_id = _global("User", _attr(order, "user_id"))
    paid = kind in {EventKind.ORDER_PAID, EventKind.ORDER_FULLY_PAID} and charge_status in {
        "FULL",
        "OVERCHARGED",
        "PARTIAL",
    }
    snapshot = OrderSnapshot(
        saleor_order_id=order_id,
        number=str(_attr(order, "number") or ""),
        channel_id=_global("Channel", _attr(order, "channel_id")) or "",
        channel_slug=_attr(channel, "slug") if channel is not None else None,
        currency=str(_attr(order, "currency") or ""),
        status=status,
        origin=_upper(_attr(order, "origin")),
        created_at=created_at,
        updated_at=updated_at,
        user_id=user_id,
        user_email=str(_attr(order, "user_email") or "").strip().lower(),
        total_gross=total_gross,
        total_net=to_decimal(_attr(order, "total_net_amount")),
        shipping_gross=to_decimal(_attr(order, "shipping_price_gross_amount")),
        subtotal_gross=to_decimal(_attr(order, "subtotal_gross_amount")),
        voucher_code=_attr(order, "voucher_code"),
        lines=_lines(order),
        payment=payment,
        paid_at=issued if paid else None,
        fulfilled_at=issued if kind == EventKind.ORDER_FULFILLED else None,
        cancelled_at=issued if status == "CANCELED" else None,
    )
    return CrmEvent(
        kind=kind,
        source=EventSource.PLUGIN,
        object_id=order_id,
        issued_at=issued,
        order=snapshot,
        dedupe_key=_dedupe_key(kind, order_id, updated_at),
    )


def _sum_attr(items: Iterable[Any] | None, name: str) -> Decimal | None:
    if items is None:
        return None
    try:
        return amount(sum((amount(_attr(item, name)) for item in items), ZERO))
    except (TypeError, ValueError):
        return None


def _lines(order: Any) -> tuple[OrderLineSnapshot, ...] | None:
    rows = _related(order, "lines")
    if rows is None:
        return None
    lines = []
    for row in rows:
        variant = _attr(row, "variant")
        product = _attr(variant, "product") if variant is not None else None
        category = _attr(product, "category") if product is not None else None
        lines.append(
            OrderLineSnapshot(
                saleor_line_id=_global("OrderLine", _attr(row, "id")) or "",
                product_name=_attr(row, "product_name") or "",
                variant_name=_attr(row, "variant_name") or "",
                quantity=int(_attr(row, "quantity") or 0),
                quantity_fulfilled=_attr(row, "quantity_fulfilled"),
                unit_price_gross=amount(_attr(row, "unit_price_gross_amount")),
                unit_price_net=amount(_attr(row, "unit_price_net_amount")),
                total_price_gross=amount(_attr(row, "total_price_gross_amount")),
                variant_id=_attr(row, "product_variant_id")
                or _global("ProductVariant", _attr(row, "variant_id")),
                product_id=_global("Product", _attr(variant, "product_id")) if variant else None,
                product_slug=_attr(product, "slug") if product is not None else None,
                category_id=_global("Category", _attr(product, "category_id")) if product else None,
                category_slug=_attr(category, "slug") if category is not None else None,
                sku=_attr(row, "product_sku"),
            )
        )
    return tuple(lines)


def translate_customer(
    kind: EventKind, user: Any, *, issued_at: datetime | None = None
) -> CrmEvent:
    issued = issued_at or timezone.now()
    user_id = _global("User", _attr(user, "id", _attr(user, "pk")))
    if not user_id:
        raise ValueError("User without id.")
    updated_at = parse_datetime(_attr(user, "updated_at"))
    metadata = _attr(user, "metadata") or {}
    language = _attr(user, "language_code")
    address = _attr(user, "default_billing_address") or _attr(user, "default_shipping_address")
    country = _attr(address, "country") if address is not None else None
    snapshot = CustomerSnapshot(
        saleor_user_id=user_id,
        email=str(_attr(user, "email") or "").strip().lower(),
        first_name=_attr(user, "first_name") or "",
        last_name=_attr(user, "last_name") or "",
        is_active=_attr(user, "is_active"),
        is_confirmed=_attr(user, "is_confirmed"),
        date_joined=parse_datetime(_attr(user, "date_joined")),
        updated_at=updated_at,
        language_code=str(language).lower() if language else None,
        country_code=str(_attr(country, "code", country) or "")[:2] or None if country else None,
        metadata={str(k): str(v) for k, v in dict(metadata).items()}
        if isinstance(metadata, dict)
        else {},
    )
    # A deletion is one fact, whatever the object's updated_at says.
    stamp_source = None if kind == EventKind.CUSTOMER_DELETED else updated_at
    key = (
        stable_hash("plugin", kind.value, user_id)
        if kind == EventKind.CUSTOMER_DELETED
        else _dedupe_key(kind, user_id, stamp_source)
    )
    return CrmEvent(
        kind=kind,
        source=EventSource.PLUGIN,
        object_id=user_id,
        issued_at=issued,
        customer=snapshot,
        dedupe_key=key,
    )


class CRMPluginHooks:
    """Saleor plugin hooks. Mixed into ``CRMPlugin`` (which adds Saleor's ``BasePlugin``).

    Hooks run after Saleor's commit, in Saleor's request thread or worker: an exception here
    would reach the shopper and skip the plugins after us. So each hook only translates and
    stores, logs its own failure, and returns ``previous_value`` unchanged.
    """

    def _record_order(self, kind: EventKind, order: Any, previous_value: Any) -> Any:
        try:
            inbox.store_event(translate_order(kind, order))
        except Exception:  # the one deliberate broad except: never break Saleor
            logger.exception("CRM could not record %s", kind.value)
        return previous_value

    def _record_customer(self, kind: EventKind, user: Any, previous_value: Any) -> Any:
        try:
            inbox.store_event(translate_customer(kind, user))
        except Exception:
            logger.exception("CRM could not record %s", kind.value)
        return previous_value

    def order_created(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_CREATED, order, previous_value)

    def order_confirmed(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_CONFIRMED, order, previous_value)

    def order_paid(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_PAID, order, previous_value)

    def order_fully_paid(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_FULLY_PAID, order, previous_value)

    def order_refunded(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_REFUNDED, order, previous_value)

    def order_fully_refunded(
        self, order: Any, previous_value: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return self._record_order(EventKind.ORDER_FULLY_REFUNDED, order, previous_value)

    def order_cancelled(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_CANCELLED, order, previous_value)

    def order_fulfilled(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_FULFILLED, order, previous_value)

    def order_updated(self, order: Any, previous_value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._record_order(EventKind.ORDER_UPDATED, order, previous_value)

    def customer_created(
        self, customer: Any, previous_value: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return self._record_customer(EventKind.CUSTOMER_CREATED, customer, previous_value)

    def customer_updated(
        self, customer: Any, previous_value: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return self._record_customer(EventKind.CUSTOMER_UPDATED, customer, previous_value)

    def customer_deleted(
        self, customer: Any, previous_value: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return self._record_customer(EventKind.CUSTOMER_DELETED, customer, previous_value)
