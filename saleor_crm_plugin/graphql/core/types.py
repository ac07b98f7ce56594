"""Small types shared by every domain's schema."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import graphene


class CrmMoney(graphene.ObjectType):
    """An amount in one currency. ``amount`` is a Float like Saleor's ``Money.amount``, so
    storefront money formatting code works unchanged."""

    currency = graphene.String(required=True, description="Currency code (ISO 4217).")
    amount = graphene.Float(required=True, description="Amount of money.")

    class Meta:
        description = "Represents amount of money in specific currency."


def money(amount: Decimal | None, currency: str) -> dict[str, Any] | None:
    if amount is None:
        return None
    return {"amount": float(amount), "currency": currency}
