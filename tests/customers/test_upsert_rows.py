"""``core.bulk.upsert_rows`` (the aggregate refresh's per-channel stats): one statement over
arrays stores what the per-row ``INSERT ... ON CONFLICT DO UPDATE`` statements stored, new
keys inserted and existing ones updated; repeated keys keep the per-row statements, applied
in row order (the last one wins)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.customers.models import Customer, CustomerChannelStats
from saleor_crm_plugin.customers.projection import _STATS_FIELDS

META = CustomerChannelStats._meta
KEY = [META.get_field(name) for name in ("customer", "channel_id", "currency")]
VALUES = [META.get_field(name) for name in _STATS_FIELDS]


def _rows(customers, channel: str, shift: int) -> list[CustomerChannelStats]:
    return [
        CustomerChannelStats(
            customer_id=customer.pk,
            channel_id=channel,
            currency="EUR",
            channel_slug=f"s-{n + shift}" if n % 2 else "",
            order_count=n + shift,
            total_spent=Decimal(n + shift) / 4,
            total_refunded=Decimal("0.000"),
            first_order_at=datetime(2026, 1, n + 1, tzinfo=UTC) if n % 3 else None,
            last_order_at=datetime(2026, 2, n + shift + 1, tzinfo=UTC),
        )
        for n, customer in enumerate(customers)
    ]


def _stored(channel: str) -> list[tuple]:
    rows = CustomerChannelStats.objects.filter(channel_id=channel).order_by("customer_id")
    return list(rows.values_list("customer_id", "currency", *_STATS_FIELDS))


@pytest.mark.django_db
def test_one_statement_stores_what_the_per_row_statements_stored(monkeypatch):
    customers = [Customer.objects.create(email=f"c{n}@example.com") for n in range(6)]
    with CaptureQueriesContext(connection) as queries:
        bulk.upsert_rows(CustomerChannelStats, _rows(customers[:4], "new", 0), KEY, VALUES)
        bulk.upsert_rows(CustomerChannelStats, _rows(customers[2:], "new", 5), KEY, VALUES)
    if connection.vendor == "postgresql":
        assert len(queries) == 2 and all("unnest" in q["sql"] for q in queries)

    monkeypatch.setattr(bulk, "_array_type", lambda values, field: None)  # per-row statements
    bulk.upsert_rows(CustomerChannelStats, _rows(customers[:4], "old", 0), KEY, VALUES)
    bulk.upsert_rows(CustomerChannelStats, _rows(customers[2:], "old", 5), KEY, VALUES)

    assert _stored("new") == _stored("old")
    assert len(_stored("new")) == 6
    assert _stored("new")[2][3] == 5  # order_count, updated by the second call


@pytest.mark.django_db
def test_repeated_keys_keep_row_order():
    customer = Customer.objects.create(email="c@example.com")
    rows = [*_rows([customer], "dup", 0), *_rows([customer], "dup", 7)]
    with CaptureQueriesContext(connection) as queries:
        bulk.upsert_rows(CustomerChannelStats, rows, KEY, VALUES)
    assert all("unnest" not in q["sql"] for q in queries)
    assert _stored("dup")[0][3] == 7
    bulk.upsert_rows(CustomerChannelStats, [], KEY, VALUES)
