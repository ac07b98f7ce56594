"""Builders for RFM tests: customers and orders written straight into the projection."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from saleor_crm_plugin.customers.models import Customer, Order, OrderStatus
from saleor_crm_plugin.customers.projection import refresh_customer_stats
from saleor_crm_plugin.rfm.models import CustomerRfm

CHANNEL = "Q2hhbm5lbDox"
AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture
def make_customer(db: Any) -> Callable[..., Customer]:
    def _make(email: str | None = None, *, guest: bool = False, **kwargs: Any) -> Customer:
        n = next(_ids)
        return Customer.objects.create(
            email=email if email is not None else f"c{n}@example.com",
            saleor_user_id=None if guest else f"VXNlcjo{n}",
            **kwargs,
        )

    return _make


@pytest.fixture
def make_order(db: Any) -> Callable[..., Order]:
    def _make(
        customer: Customer | None,
        *,
        days_ago: float = 10,
        charged: str | Decimal = "100",
        status: str = OrderStatus.FULFILLED,
        paid: bool = True,
        channel: str = CHANNEL,
        refresh: bool = True,
    ) -> Order:
        n = next(_ids)
        at = AS_OF - timedelta(days=days_ago)
        order = Order.objects.create(
            saleor_order_id=f"T3JkZXI6{n}",
            number=str(n),
            customer=customer,
            channel_id=channel,
            channel_slug="default-channel" if channel == CHANNEL else channel.lower(),
            currency="USD",
            status=status,
            total_charged=Decimal(charged) if paid else Decimal(0),
            created_at=at - timedelta(minutes=5),
            paid_at=at if paid else None,
        )
        if customer is not None and refresh:
            refresh_customer_stats([customer.pk])
        return order

    return _make


def rfm_state(channel: str = CHANNEL) -> list[tuple[Any, ...]]:
    """Everything a run decides per customer, comparable across runs."""
    return list(
        CustomerRfm.objects.filter(channel_id=channel)
        .order_by("customer_id")
        .values_list(
            "customer_id",
            "last_paid_at",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            "segment",
            "customer_order_count",
        )
    )
