"""``core.bulk.insert_ignoring_conflicts`` (the loyalty accounts a batch opens) stores what
``bulk_create(ignore_conflicts=True)`` stored: the same rows and defaults, conflicting rows
skipped, a concurrent creator's row left as it was; JSON lists and dicts as ``jsonb[]``
elements, other JSON values through Django's INSERT."""

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


WRITEBACK_FIELDS = ("items", "version", "pending", "claimed_until", "attempts", "last_error")
AWKWARD_ITEMS = [
    {"k": "v"},
    {},
    {"quote": 'say "hi"', "slash": "a\\b", "braces": "{x,y}", "null": "NULL", "é": "ü ☃"},
    {"nested": {"list": [1, 2.5, None, True], "empty": []}, "n": None},
]


@pytest.mark.django_db
def test_json_lists_and_dicts_go_in_one_statement_as_bulk_create_stored_them():
    def rows(prefix: str) -> list[MetadataWriteback]:
        made = [
            MetadataWriteback(object_id=f"{prefix}-{n}", items=items)
            for n, items in enumerate(AWKWARD_ITEMS)
        ]
        return [*made, MetadataWriteback(object_id=f"{prefix}-0", items={"conflict": "x"})]

    def stored(prefix: str) -> list[tuple]:
        found = MetadataWriteback.objects.filter(object_id__startswith=f"{prefix}-")
        return list(found.order_by("object_id").values_list(*WRITEBACK_FIELDS))

    with CaptureQueriesContext(connection) as queries:
        bulk.insert_ignoring_conflicts(MetadataWriteback, rows("new"))
    MetadataWriteback.objects.bulk_create(rows("old"), ignore_conflicts=True)
    assert stored("new") == stored("old")
    assert stored("new")[0][0] == {"k": "v"}
    if connection.vendor == "postgresql":
        assert len(queries) == 1 and "unnest" in queries[0]["sql"]


@pytest.mark.django_db
def test_json_scalars_keep_djangos_insert():
    rows = [MetadataWriteback(object_id="U-1", items="just text")]
    with CaptureQueriesContext(connection) as queries:
        bulk.insert_ignoring_conflicts(MetadataWriteback, rows)
    assert all("unnest" not in q["sql"] for q in queries)  # Django's own (``UNNEST``)
    bulk.insert_ignoring_conflicts(MetadataWriteback, [MetadataWriteback(object_id="U-1")])
    assert MetadataWriteback.objects.get(object_id="U-1").items == "just text"
