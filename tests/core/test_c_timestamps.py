"""``core.rows.c_timestamps``: the ORM's reads under the execute wrapper (an inbox batch's)
give the very values Django's own ``timestamptz`` loader gives, tzinfo object included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import connection
from django.db.models import Max, Min

from saleor_crm_plugin.core import rows
from saleor_crm_plugin.core.rows import c_timestamps
from saleor_crm_plugin.customers.models import Customer, Order
from tests.graphql.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db

INSTANTS = [
    datetime(2026, 12, 1, 10, 15, 30, 123456, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 7, 1, 14, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2000, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),
]


def _reads() -> list[Any]:
    """ORM reads of timestamps of the kinds a batch makes: instances, values_list across a
    join, aggregates, NULLs."""
    return [
        [(c.pk, c.created_at, c.erased_at) for c in Customer.objects.order_by("pk")],
        list(Order.objects.order_by("pk").values_list("pk", "created_at", "customer__erased_at")),
        Order.objects.aggregate(first=Min("created_at"), last=Max("created_at")),
    ]


def _with_tzinfo(value: Any) -> Any:
    """``value`` with every datetime paired with its tzinfo object's identity."""
    if isinstance(value, datetime):
        return (value, id(value.tzinfo))
    if isinstance(value, dict):
        return {k: _with_tzinfo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_with_tzinfo(v) for v in value]
    return value


def test_orm_reads_equal_with_and_without_the_wrapper() -> None:
    for n, instant in enumerate(INSTANTS, start=1):
        customer = make_customer(n)
        Customer.objects.filter(pk=customer.pk).update(
            created_at=instant, erased_at=instant if n % 2 else None
        )
        order = make_order(customer, n)
        Order.objects.filter(pk=order.pk).update(created_at=instant)
    before = _reads()
    with connection.execute_wrapper(c_timestamps):
        during = _reads()
    assert _with_tzinfo(during) == _with_tzinfo(before)
    assert all(isinstance(t, datetime) for _, t, _ in during[0])


def test_wrapper_registers_the_c_loader_only_where_values_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    original = rows.use_c_timestamptz_loader

    def spy(raw_cursor: Any) -> bool:
        seen.append(original(raw_cursor))
        return seen[-1]

    monkeypatch.setattr(rows, "use_c_timestamptz_loader", spy)
    with connection.execute_wrapper(c_timestamps):
        Customer.objects.exists()
    assert seen == [rows._C_TZ_LOADER is not None]


def test_wrapper_without_a_cursor_in_context_just_executes() -> None:
    calls: list[tuple[Any, ...]] = []
    result = c_timestamps(lambda *a: calls.append(a) or "done", "SELECT 1", None, False, {})
    assert result == "done"
    assert calls == [("SELECT 1", None, False, {})]
