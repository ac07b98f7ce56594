"""String enums (``TextChoices`` members: a point lot's status and source, a ledger entry's
kind) take the plain-string paths of ``core.bulk``: kept as read by ``prepared_columns`` (as
Django's ``get_db_prep_save`` keeps them), written into COPY's text block and ``text[]``
literals by their characters. The rows stored are those the row-by-row paths (psycopg's
``write_row``, one ``UPDATE`` per row) stored, and a set of point lots whose statuses mix
members and loaded strings is now one statement."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    EntrySource,
    LedgerEntry,
    LotStatus,
    LoyaltyAccount,
    PointLot,
)

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY and arrays")

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_string_enums_count_as_strings_and_nothing_else_does() -> None:
    assert bulk._text_kind(LotStatus) is str
    assert bulk._text_kind(EntryKind) is str
    assert bulk._text_kind(str) is str
    assert bulk._text_kind(int) is int

    class Plain(str):
        pass

    assert bulk._text_kind(Plain) is Plain  # not an enum: still converted as before
    assert bulk._text_kinds({str, LotStatus, type(None)}) == {str, type(None)}


def test_members_are_written_by_their_value() -> None:
    assert bulk.array_param([LotStatus.PENDING, "active", None]) == '{"pending","active",NULL}'
    assert bulk.array_param([EntryKind.CONFIRM]) == '{"confirm"}'
    assert bulk._copy_text([[LotStatus.PENDING, "x\ty"], [EntrySource.ORDER, None]]) == (
        b"pending\torder\nx\\ty\t\\N\n"
    )
    column = [LotStatus.ACTIVE, "spent"]
    field = PointLot._meta.get_field("status")
    (prepared,) = bulk.prepared_columns([_Row(v) for v in column], [field])
    assert list(prepared) == [field.get_db_prep_save(v, connection) for v in column]
    assert bulk._array_type(column, field) == "text[]"


class _Row:
    def __init__(self, status: str) -> None:
        self.status = status


def _account(name: str) -> LoyaltyAccount:
    customer = Customer.objects.create(saleor_user_id=name, email=f"{name}@example.com")
    return LoyaltyAccount.objects.create(customer=customer, channel_id="c", channel_slug="c")


def _lots(account: LoyaltyAccount, prefix: str) -> list[PointLot]:
    statuses = [LotStatus.PENDING, LotStatus.ACTIVE, "spent", LotStatus.REVERSED, "pending"]
    return [
        PointLot(
            account=account,
            key=f"{prefix}-{n}",
            source=EntrySource.ORDER if n % 2 else "bonus",
            source_id=f"o\t{n}",
            order_id=f"o{n}",
            status=status,
            points=10 * n,
            multiplier=Decimal("1.500"),
            earned_at=WHEN,
            created_at=WHEN,
        )
        for n, status in enumerate(statuses)
    ]


def _entries(account: LoyaltyAccount, lots: list[PointLot], prefix: str) -> list[LedgerEntry]:
    kinds = [EntryKind.PENDING, EntryKind.CONFIRM, "reverse", EntryKind.BONUS, "adjust"]
    return [
        LedgerEntry(
            account=account,
            lot=lot,
            kind=kind,
            source=EntrySource.ORDER if n % 2 else "system",
            source_id=lot.source_id,
            points=n,
            reason="Order paid\n",
            idempotency_key=f"{prefix}-{n}",
            data={"n": n},
            created_at=WHEN,
        )
        for n, (kind, lot) in enumerate(zip(kinds, lots, strict=True))
    ]


def _stored(model, prefix_field: str, prefix: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    skip = {"id", "account_id", "lot_id", prefix_field}
    fields = [f.attname for f in model._meta.concrete_fields if f.attname not in skip]
    rows = model.objects.filter(**{f"{prefix_field}__startswith": prefix}).order_by(prefix_field)
    return [tuple(row.values()) for row in rows.values(*fields)]


@pg_only
@pytest.mark.django_db
def test_copy_of_lots_and_entries_stores_what_row_by_row_stored(monkeypatch) -> None:
    blocks: list[bytes | None] = []
    real = bulk._copy_text
    monkeypatch.setattr(bulk, "_copy_text", lambda columns: blocks.append(real(columns)) or None)
    old = _account("old")
    old_lots = _lots(old, "old")
    bulk.insert_rows(PointLot, old_lots)  # psycopg's write_row (the block is dropped)
    bulk.insert_rows(LedgerEntry, _entries(old, old_lots, "old"))
    assert all(block is not None for block in blocks)  # members no longer force row by row

    monkeypatch.setattr(bulk, "_copy_text", real)
    new = _account("new")
    new_lots = _lots(new, "new")
    bulk.insert_rows(PointLot, new_lots)
    bulk.insert_rows(LedgerEntry, _entries(new, new_lots, "new"))

    assert _stored(PointLot, "key", "new") == _stored(PointLot, "key", "old")
    assert _stored(LedgerEntry, "idempotency_key", "new") == _stored(
        LedgerEntry, "idempotency_key", "old"
    )
    assert [lot.status for lot in PointLot.objects.filter(key__startswith="new")] == [
        "pending",
        "active",
        "spent",
        "reversed",
        "pending",
    ]


@pg_only
@pytest.mark.django_db
def test_lots_with_mixed_statuses_update_in_one_statement_as_row_by_row(monkeypatch) -> None:
    account = _account("upd")
    lots = _lots(account, "one")
    twins = _lots(account, "row")
    bulk.insert_rows(PointLot, [*lots, *twins])
    loaded = {lot.key: lot for lot in PointLot.objects.filter(account=account)}
    for prefix in ("one", "row"):
        for n, status in enumerate([LotStatus.SPENT, "active", LotStatus.REVERSED]):
            lot = loaded[f"{prefix}-{n}"]
            lot.status = status
            lot.remaining = n
    fields = ["status", "remaining", "source"]
    statements: list[str] = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        bulk.update_rows(PointLot, [loaded[f"one-{n}"] for n in range(5)], fields)
    assert len(statements) == 1 and "unnest" in statements[0]

    monkeypatch.setattr(bulk, "_set_update", lambda *args: False)  # one UPDATE per row
    bulk.update_rows(PointLot, [loaded[f"row-{n}"] for n in range(5)], fields)
    assert _stored(PointLot, "key", "one") == _stored(PointLot, "key", "row")
    assert PointLot.objects.get(key="one-0").status == "spent"
