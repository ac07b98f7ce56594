"""Builders for loyalty tests: order events as Saleor would send them (through the real
projection + loyalty handlers), and a canonical dump of the loyalty state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.events.handlers import handle_event
from saleor_crm_plugin.events.types import (
    CrmEvent,
    CustomerSnapshot,
    EventKind,
    EventSource,
    OrderSnapshot,
    PaymentSnapshot,
)
from saleor_crm_plugin.loyalty.models import LedgerEntry, LoyaltyAccount, PointLot

CHANNEL = to_global_id("Channel", 1)
CHANNEL_SLUG = "default-channel"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def user_id(n: int | str) -> str:
    return to_global_id("User", n)


def order_id(n: int | str) -> str:
    return to_global_id("Order", f"order-{n}")


def order_event(
    n: int | str,
    kind: EventKind = EventKind.ORDER_FULLY_PAID,
    *,
    user: int | str | None = 1,
    email: str | None = None,
    created: datetime = T0,
    updated: datetime | None = None,
    total: str = "120",
    net: str | None = "100",
    shipping: str = "12",
    charged: str | None = None,
    refunded: str = "0",
    status: str = "UNFULFILLED",
    fulfilled_at: datetime | None = None,
    cancelled_at: datetime | None = None,
    channel: str = CHANNEL,
    channel_slug: str = CHANNEL_SLUG,
    currency: str = "USD",
    paid: bool = True,
) -> CrmEvent:
    """One order snapshot. ``charged`` defaults to the total minus ``refunded`` when ``paid``."""
    updated = updated or created
    total_dec = Decimal(total)
    if charged is None:
        charged_dec = (total_dec - Decimal(refunded)) if paid else Decimal(0)
    else:
        charged_dec = Decimal(charged)
    snapshot = OrderSnapshot(
        saleor_order_id=order_id(n),
        number=str(n),
        channel_id=channel,
        channel_slug=channel_slug,
        currency=currency,
        status=status,
        created_at=created,
        updated_at=updated,
        user_id=user_id(user) if user is not None else None,
        user_email=email or (f"user{user}@example.com" if user is not None else "guest@x.com"),
        total_gross=total_dec,
        total_net=Decimal(net) if net is not None else None,
        shipping_gross=Decimal(shipping),
        payment=PaymentSnapshot(
            total_charged=charged_dec,
            total_refunded=Decimal(refunded),
            charge_status="FULL" if paid else "NONE",
        ),
        paid_at=created if paid else None,
        fulfilled_at=fulfilled_at,
        cancelled_at=cancelled_at,
    )
    return CrmEvent(
        kind=kind,
        source=EventSource.SUBSCRIPTION,
        object_id=snapshot.saleor_order_id,
        issued_at=updated,
        order=snapshot,
        dedupe_key=f"{n}:{kind}:{updated.isoformat()}",
    )


def customer_event(
    user: int | str,
    *,
    at: datetime = T0,
    email: str | None = None,
    metadata: dict[str, str] | None = None,
    kind: EventKind = EventKind.CUSTOMER_CREATED,
) -> CrmEvent:
    snapshot = CustomerSnapshot(
        saleor_user_id=user_id(user),
        email=email or f"user{user}@example.com",
        first_name="Test",
        last_name=f"User {user}",
        is_active=True,
        date_joined=at,
        updated_at=at,
        metadata=metadata,
    )
    return CrmEvent(
        kind=kind,
        source=EventSource.SUBSCRIPTION,
        object_id=snapshot.saleor_user_id,
        issued_at=at,
        customer=snapshot,
        dedupe_key=f"{user}:{kind}:{at.isoformat()}",
    )


def apply(*events: CrmEvent) -> None:
    """Exactly what the inbox does: every handler, one savepoint per event."""
    for event in events:
        with transaction.atomic():
            handle_event(event)


def customer(user: int | str = 1) -> Customer:
    return Customer.objects.get(saleor_user_id=user_id(user))


def account(user: int | str = 1, channel: str = CHANNEL) -> LoyaltyAccount:
    return LoyaltyAccount.objects.get(customer__saleor_user_id=user_id(user), channel_id=channel)


def lot(key: str) -> PointLot:
    return PointLot.objects.get(key=key)


def loyalty_state() -> dict[str, Any]:
    """Balances and lots by natural keys (entries are history; their *sums* must agree)."""
    accounts = {
        (a.customer.saleor_user_id, a.channel_id): (
            a.balance,
            a.pending,
            a.debt,
            a.tier,
            a.lifetime_earned,
        )
        for a in LoyaltyAccount.objects.select_related("customer")
    }
    lots = {
        _stable_key(lot): (
            lot.status,
            lot.points,
            lot.base_points,
            str(lot.multiplier),
            lot.reversed_points,
            lot.remaining,
            lot.order_id,
            lot.confirm_after,
        )
        for lot in PointLot.objects.select_related("account__customer")
    }
    sums: dict[tuple[str, str], list[int]] = {}
    for entry in LedgerEntry.objects.select_related("lot"):
        lot_key = _stable_key(entry.lot) if entry.lot else "-"
        total = sums.setdefault((lot_key, entry.kind), [0, 0])
        total[0] += entry.points
        total[1] += entry.pending_points
    return {"accounts": accounts, "lots": lots, "entry_sums": sums}


def _stable_key(lot: PointLot) -> str:
    """Lot keys of bonuses embed row ids; name them by customer so runs compare."""
    prefix = lot.key.split(":", 1)[0]
    if prefix in {"signup", "first-order"}:
        return f"{prefix}:{lot.account.customer.saleor_user_id}:{lot.account.channel_id}"
    return lot.key


def days(n: float) -> timedelta:
    return timedelta(days=n)
