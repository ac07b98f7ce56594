"""A canonical dump of the projection by natural keys, for "same state" assertions."""

from __future__ import annotations

from typing import Any

from django.forms.models import model_to_dict

from saleor_crm_plugin.customers.models import Customer, CustomerChannelStats, Order, OrderLine

_SKIP = {"id", "created_at_local", "updated_at", "projected_at", "customer", "order"}


def _customer_key(customer: Customer | None) -> str | None:
    if customer is None:
        return None
    return customer.saleor_user_id or f"guest:{customer.email}"


def projection_state() -> dict[str, Any]:
    customers = {}
    for c in Customer.objects.all():
        data = model_to_dict(c, exclude=["id"])
        data.pop("updated_at", None)
        data["created_at"] = None
        customers[_customer_key(c)] = data
    orders = {}
    for o in Order.objects.select_related("customer"):
        data = {
            f.name: getattr(o, f.name) for f in Order._meta.concrete_fields if f.name not in _SKIP
        }
        data["customer"] = _customer_key(o.customer)
        data["lines"] = {
            line.saleor_line_id: {
                f.name: getattr(line, f.name)
                for f in OrderLine._meta.concrete_fields
                if f.name not in _SKIP
            }
            for line in o.lines.all()
        }
        orders[o.saleor_order_id] = data
    stats = {
        (_customer_key(s.customer), s.channel_id, s.currency): {
            f.name: getattr(s, f.name)
            for f in CustomerChannelStats._meta.concrete_fields
            if f.name not in _SKIP
        }
        for s in CustomerChannelStats.objects.select_related("customer")
    }
    return {"customers": customers, "orders": orders, "stats": stats}
