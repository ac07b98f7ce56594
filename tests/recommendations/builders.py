"""Seeded synthetic shops built straight into the order projection.

Customers have a favourite category and mostly buy products from it that they have not
bought before, with a skewed popularity inside each category: taste, not repeat buying or
global popularity, predicts their next order, which a working model must pick up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine, OrderStatus

CHANNEL = to_global_id("Channel", 1)
OTHER_CHANNEL = to_global_id("Channel", 2)
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def product(n: int) -> str:
    return to_global_id("Product", n)


def category(n: int) -> str:
    return to_global_id("Category", n)


@dataclass
class Shop:
    customers: list[Customer] = field(default_factory=list)
    favourite: dict[int, int] = field(default_factory=dict)  # customer pk -> category
    categories: dict[str, int] = field(default_factory=dict)  # product id -> category


class OrderFactory:
    def __init__(self) -> None:
        self.order_seq = 0

    def order(
        self,
        customer: Customer | None,
        lines: list[tuple[str, int]],
        *,
        at: datetime,
        paid: bool = True,
        status: str = OrderStatus.FULFILLED,
        channel_id: str = CHANNEL,
        refunded: dict[str, int] | None = None,
        categories: dict[str, int] | None = None,
        price: Decimal = Decimal("10.000"),
    ) -> Order:
        self.order_seq += 1
        n = self.order_seq
        order = Order.objects.create(
            saleor_order_id=to_global_id("Order", n),
            number=str(n),
            customer=customer,
            channel_id=channel_id,
            channel_slug="default" if channel_id == CHANNEL else "other",
            currency="USD",
            status=status,
            created_at=at,
            paid_at=at if paid else None,
        )
        OrderLine.objects.bulk_create(
            [
                OrderLine(
                    order=order,
                    saleor_line_id=f"{n}-{i}",
                    product_id=pid,
                    product_name=f"Product {pid}",
                    category_id=category(categories[pid])
                    if categories and pid in categories
                    else "",
                    quantity=qty,
                    quantity_refunded=(refunded or {}).get(pid, 0),
                    unit_price_gross=price,
                    unit_price_net=price,
                    total_price_gross=price * qty,
                )
                for i, (pid, qty) in enumerate(lines)
            ]
        )
        return order


def build_shop(
    *,
    seed: int = 7,
    n_customers: int = 120,
    n_categories: int = 6,
    per_category: int = 15,
    orders_per_customer: tuple[int, int] = (3, 6),
    lines_per_order: int = 3,
    taste: float = 0.85,
    factory: OrderFactory | None = None,
) -> Shop:
    rng = random.Random(seed)
    factory = factory or OrderFactory()
    shop = Shop()
    products_by_category = {
        c: [product(c * 1000 + i) for i in range(per_category)] for c in range(n_categories)
    }
    for c, pids in products_by_category.items():
        for pid in pids:
            shop.categories[pid] = c
    # Within a category, earlier products are more popular (Zipf-like weights).
    weights = [1.0 / (i + 1) ** 0.7 for i in range(per_category)]
    all_products = [p for pids in products_by_category.values() for p in pids]
    customers = Customer.objects.bulk_create(
        [
            Customer(email=f"shopper{n}@example.com", saleor_user_id=f"U{n}")
            for n in range(n_customers)
        ]
    )
    for customer in customers:
        favourite = rng.randrange(n_categories)
        shop.favourite[customer.pk] = favourite
        shop.customers.append(customer)
        bought: set[str] = set()
        n_orders = rng.randint(*orders_per_customer)
        at = START + timedelta(days=rng.randint(0, 30), hours=rng.randint(0, 12))
        for _ in range(n_orders):
            lines: dict[str, int] = {}
            while len(lines) < lines_per_order:
                if rng.random() < taste:
                    pool = [p for p in products_by_category[favourite] if p not in bought]
                    pool_weights = [weights[int(p_index(p)) % 1000] for p in pool]
                    if not pool:
                        pool, pool_weights = all_products, [1.0] * len(all_products)
                    pid = rng.choices(pool, weights=pool_weights)[0]
                else:
                    pid = rng.choice(all_products)
                lines[pid] = rng.randint(1, 3)
            bought.update(lines)
            factory.order(customer, list(lines.items()), at=at, categories=shop.categories)
            at += timedelta(days=rng.randint(5, 40), hours=rng.randint(0, 5))
    return shop


def p_index(global_id: str) -> str:
    from saleor_crm_plugin.core.ids import from_global_id

    return from_global_id(global_id)[1]
