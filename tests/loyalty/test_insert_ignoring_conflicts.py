"""``core.bulk.insert_ignoring_conflicts`` (the loyalty accounts a batch opens) stores what
``bulk_create(ignore_conflicts=True)`` stored: the same rows and defaults, conflicting rows
skipped, a concurrent creator's row left as it was; JSON columns keep Django's INSERT."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.loyalty.models import LoyaltyAccount
from saleor_crm_plugin.writeback.models import MetadataWriteback

FIELDS = [
    f.attname
    for f in LoyaltyAccount._meta.concrete_fields
    if not f.primary_key and f.attname not in {"channel_id", "created_at", "updated_at"}
]


def _accounts(customers, channel: str) -> list[LoyaltyAccount]:
    return [
        LoyaltyAccount(
            customer_id=customer.pk,
            channel_id=channel,
            channel_slug=f"slug-{n}" if n % 2 else "",
            currency="EUR" if n % 2 else "",
            tier_since=datetime(2026, 1, n + 1, tzinfo=UTC) if n % 3 == 0 else None,
        )
        for n, customer in enumerate(customers)
    ]


def _stored(channel: str) -> list[tuple]:
    rows = LoyaltyAccount.objects.filter(channel_id=channel).order_by("customer_id")
    return list(rows.values_list(*FIELDS))  # the times are the calls', the channel differs


@pytest.mark.django_db
def test_rows_and_skipped_conflicts_are_what_bulk_create_gave():
    customers = [Customer.objects.create(email=f"c{n}@example.com") for n in range(5)]
    # a concurrent creator's rows, which both ways must leave untouched
    for channel in ("new", "old"):
        LoyaltyAccount.objects.create(
            customer=customers[1], channel_id=channel, balance=7, tier="gold"
        )

    with CaptureQueriesContext(connection) as queries:
        bulk.insert_ignoring_conflicts(LoyaltyAccount, _accounts(customers, "new"))
    LoyaltyAccount.objects.bulk_create(_accounts(customers, "old"), ignore_conflicts=True)

    assert _stored("new") == _stored("old")
    assert len(_stored("new")) == 5
    kept = LoyaltyAccount.objects.get(customer=customers[1], channel_id="new")
    assert (kept.balance, kept.tier) == (7, "gold")
    new = LoyaltyAccount.objects.filter(channel_id="new").exclude(customer=customers[1])
    assert all(a.created_at is not None and a.updated_at is not None for a in new)
    if connection.vendor == "postgresql":
        assert len(queries) == 1 and "unnest" in queries[0]["sql"]
    bulk.insert_ignoring_conflicts(LoyaltyAccount, [])


@pytest.mark.django_db
def test_json_columns_keep_djangos_insert():
    rows = [MetadataWriteback(object_id="U-1", items={"k": "v"})]
    with CaptureQueriesContext(connection) as queries:
        bulk.insert_ignoring_conflicts(MetadataWriteback, rows)
        bulk.insert_ignoring_conflicts(MetadataWriteback, [MetadataWriteback(object_id="U-1")])
    assert all("unnest" not in q["sql"] for q in queries)
    assert MetadataWriteback.objects.get(object_id="U-1").items == {"k": "v"}
