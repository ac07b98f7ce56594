"""``projection._refresh_chunk`` as one PostgreSQL statement stores what the three reads and two
writes in Python stored: the same per-channel rows (ids included: proposed in the same order,
so taken from the sequence alike), the same stale rows deleted, the same customers' counts and
first/last orders written, and only those (a row whose figures did not change keeps its
``xmin``, that is, was not written).

Each case builds customers, orders of every status, channel and currency, and current
figures that are right, wrong, stale or missing, then runs the chunk both ways from the same
state and sequence position (``_SET_WISE_REFRESH`` off for the Python path)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.models import (
    Customer,
    CustomerChannelStats,
    Order,
    OrderStatus,
)

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the set-wise statement is PostgreSQL's"
)

_STATS = CustomerChannelStats._meta.db_table
_CUSTOMERS = Customer._meta.db_table
_CHANNELS = ["default-channel", "b2b", "outlet"]
_CURRENCIES = ["USD", "EUR"]
_BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _amount(rng: random.Random) -> Decimal:
    return rng.choice(
        [Decimal(0), Decimal("0.000"), Decimal("12.5"), Decimal("12.500"), Decimal("0.001")]
        + [Decimal(rng.randrange(0, 10**7)) / 1000 for _ in range(3)]
    )


def _when(rng: random.Random) -> datetime:
    return _BASE + timedelta(seconds=rng.randrange(0, 10**7), microseconds=rng.randrange(10**6))


def _build(rng: random.Random, tag: str) -> list[int]:
    """Customers, their orders and current figures; the customer ids."""
    customers = Customer.objects.bulk_create(
        [
            Customer(
                email=f"{tag}-{n}@example.com",
                order_count=rng.choice([0, 0, 1, 2, 5]),
                first_order_at=rng.choice([None, _when(rng)]),
                last_order_at=rng.choice([None, _when(rng)]),
            )
            for n in range(rng.randrange(1, 14))
        ]
    )
    ids = [c.pk for c in customers]
    orders = []
    for n in range(rng.randrange(0, 40)):
        orders.append(
            Order(
                saleor_order_id=f"{tag}-o{n}",
                customer_id=rng.choice([*ids, None]),
                channel_id=rng.choice(_CHANNELS),
                channel_slug=rng.choice(["", "slug-a", "slug-b", "Slug"]),
                currency=rng.choice(_CURRENCIES),
                status=rng.choice(list(OrderStatus)),
                total_charged=_amount(rng),
                total_refunded=_amount(rng),
                created_at=_when(rng),
            )
        )
    Order.objects.bulk_create(orders)
    # Current figures: the right ones (from a first refresh), then some made wrong, some
    # deleted, some stale keys added; customers' totals shuffled.
    if rng.random() < 0.7:
        projection._refresh_chunk(sorted(rng.sample(ids, rng.randrange(0, len(ids) + 1))))
    stats = list(CustomerChannelStats.objects.filter(customer_id__in=ids))
    for row in stats:
        pick = rng.random()
        if pick < 0.15:
            row.delete()
        elif pick < 0.5:
            field = rng.choice(projection._STATS_FIELDS)
            value = {
                "channel_slug": rng.choice(["", "other", row.channel_slug]),
                "order_count": rng.randrange(0, 4),
                "total_spent": _amount(rng),
                "total_refunded": _amount(rng),
                "first_order_at": rng.choice([None, _when(rng), row.first_order_at]),
                "last_order_at": rng.choice([None, _when(rng), row.last_order_at]),
            }[field]
            setattr(row, field, value)
            row.save()
    for _ in range(rng.randrange(0, 4)):
        CustomerChannelStats.objects.get_or_create(
            customer_id=rng.choice(ids),
            channel_id=rng.choice([*_CHANNELS, "gone"]),
            currency=rng.choice([*_CURRENCIES, "PLN"]),
            defaults={"order_count": rng.randrange(0, 3), "last_order_at": _when(rng)},
        )
    for customer in rng.sample(customers, rng.randrange(0, len(customers) + 1)):
        Customer.objects.filter(pk=customer.pk).update(
            order_count=rng.randrange(0, 6),
            first_order_at=rng.choice([None, _when(rng), customer.first_order_at]),
        )
    return ids


def _state(ids: list[int]) -> tuple[list[tuple], list[tuple]]:
    """Every stats and customer row of the case, with ``xmin`` (changes when written)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT xmin::text, * FROM {_STATS} WHERE customer_id = ANY(%s) ORDER BY id", [ids]
        )
        stats = cursor.fetchall()
        cursor.execute(
            f"SELECT xmin::text, * FROM {_CUSTOMERS} WHERE id = ANY(%s) ORDER BY id", [ids]
        )
        customers = cursor.fetchall()
    return stats, customers


def _written(state: tuple[list[tuple], list[tuple]], before: tuple[list[tuple], list[tuple]]):
    """``state`` with each row's ``xmin`` as whether the row was written since ``before``
    (a savepoint writes with its own transaction id, another one for each run)."""
    marked = []
    for rows, old in zip(state, before, strict=True):
        xmins = {row[1]: row[0] for row in old}
        marked.append([(xmins.get(row[1]) != row[0], *row[1:]) for row in rows])
    return marked


def _run(chunk: list[int], ids: list[int], position: int, set_wise: bool, monkeypatch):
    monkeypatch.setattr(projection, "_SET_WISE_REFRESH", set_wise)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [_STATS, position])
    savepoint = transaction.savepoint()
    try:
        before = _state(ids)
        projection._refresh_chunk(chunk)
        return _written(_state(ids), before)
    finally:
        transaction.savepoint_rollback(savepoint)


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(40))
def test_one_statement_writes_what_the_python_refresh_wrote(seed, monkeypatch):
    rng = random.Random(seed)
    ids = _build(rng, f"s{seed}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [_STATS])
        (position,) = cursor.fetchone()
    before = _state(ids)
    for _ in range(4):
        chunk = sorted(rng.sample(ids, rng.randrange(0, len(ids) + 1)))
        if rng.random() < 0.3:
            chunk = sorted([*chunk, max(ids) + 1000])  # no such customer
        old = _run(chunk, ids, position, False, monkeypatch)
        new = _run(chunk, ids, position, True, monkeypatch)
        assert new == old
        assert _state(ids) == before  # each run rolled back


@pytest.mark.django_db
def test_refreshed_figures_are_the_orders(monkeypatch):
    """The statement's own answer, checked against figures worked out here."""
    customer = Customer.objects.create(email="x@example.com", order_count=7)
    other = Customer.objects.create(email="y@example.com")
    CustomerChannelStats.objects.create(customer=customer, channel_id="gone", currency="EUR")
    common = {"channel_id": "c", "currency": "USD", "channel_slug": "s"}
    Order.objects.create(
        saleor_order_id="a", customer=customer, status=OrderStatus.FULFILLED,
        total_charged=Decimal("1.5"), created_at=_BASE, **common,
    )  # fmt: skip
    Order.objects.create(
        saleor_order_id="b", customer=customer, status=OrderStatus.UNFULFILLED,
        total_charged=Decimal("2.25"), total_refunded=Decimal("1"),
        created_at=_BASE + timedelta(days=2), **common,
    )  # fmt: skip
    Order.objects.create(
        saleor_order_id="c", customer=customer, status=OrderStatus.CANCELED,
        total_charged=Decimal("100"), created_at=_BASE + timedelta(days=9), **common,
    )  # fmt: skip
    projection._refresh_chunk([customer.pk, other.pk])
    rows = list(CustomerChannelStats.objects.values_list("customer_id", "channel_id", "currency",
                                                         *projection._STATS_FIELDS))  # fmt: skip
    assert rows == [
        (customer.pk, "c", "USD", "s", 2, Decimal("3.75"), Decimal(1), _BASE,
         _BASE + timedelta(days=2)),
    ]  # fmt: skip
    customer.refresh_from_db()
    assert (customer.order_count, customer.first_order_at, customer.last_order_at) == (
        2,
        _BASE,
        _BASE + timedelta(days=2),
    )
    other.refresh_from_db()
    assert (other.order_count, other.first_order_at, other.last_order_at) == (0, None, None)
