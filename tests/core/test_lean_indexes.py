"""Migration 0017: no index that no query can use, and every foreign key still indexed."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, models

from saleor_crm_plugin.customers.models import Order, OrderLine

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("saleor_crm_plugin.migrations.0017_lean_projection_indexes")


def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's indexes")


def _app_tables() -> list[str]:
    return [model._meta.db_table for model in apps.get_app_config("saleor_crm_plugin").get_models()]


def _indexes(tables: list[str]) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [tables]
        )
        return dict(cursor.fetchall())


def test_no_app_table_keeps_a_like_copy():
    """Django makes a ``varchar_pattern_ops`` copy of every unique or indexed ``CharField``;
    nothing here runs ``LIKE 'prefix%'``, so each was an index entry per row for nothing. A
    later migration that makes Django create one again fails here."""
    _postgresql_only()
    found = {
        name for name, definition in _indexes(_app_tables()).items() if "_pattern_ops" in definition
    }
    assert found == set()


def test_every_foreign_key_leads_some_index():
    """The single-column foreign key indexes were dropped only where another index starts
    with the same column: the foreign key's checks, the cascades and the joins keep one."""
    _postgresql_only()
    missing = []
    with connection.cursor() as cursor:
        for model in apps.get_app_config("saleor_crm_plugin").get_models():
            for field in model._meta.concrete_fields:
                if not isinstance(field, models.ForeignKey):
                    continue
                cursor.execute(
                    """
                    SELECT count(*) FROM pg_index x
                    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
                    WHERE x.indrelid = to_regclass(%s) AND a.attname = %s AND x.indpred IS NULL
                    """,
                    [connection.ops.quote_name(model._meta.db_table), field.column],
                )
                if cursor.fetchone()[0] == 0:
                    missing.append(f"{model._meta.db_table}.{field.column}")
    assert missing == []


def test_order_lines_and_orders_have_exactly_their_useful_indexes():
    _postgresql_only()
    lines = OrderLine._meta.db_table
    orders = Order._meta.db_table
    found = {
        name: definition.split(" USING ", 1)[1]
        for name, definition in _indexes([lines, orders]).items()
    }
    product_index = connection.schema_editor()._create_index_name(lines, ["product_id"])
    assert found == {
        f"{lines}_pkey": "btree (id)",
        "crm_orderline_uniq": "btree (order_id, saleor_line_id)",
        product_index: "btree (product_id)",
        f"{orders}_pkey": "btree (id)",
        f"{orders}_saleor_order_id_key": "btree (saleor_order_id)",
        "crm_order_customer_idx": "btree (customer_id, created_at)",
        "crm_order_channel_idx": "btree (channel_id, created_at)",
        "crm_order_rfm_paid_idx": "btree (channel_id, paid_at)",
        "crm_order_rfm_projected_idx": "btree (channel_id, projected_at)",
    }


def _plan(queryset: Any) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_lookups_by_a_dropped_foreign_key_index_use_the_index_that_leads_with_it():
    _postgresql_only()
    assert "crm_orderline_uniq" in _plan(OrderLine.objects.filter(order_id=1))
    assert "crm_order_customer_idx" in _plan(Order.objects.filter(customer_id=1))


def test_running_the_migration_again_changes_nothing():
    """Not atomic (``DROP INDEX CONCURRENTLY``), so an interrupted run is simply repeated:
    on the migrated database it finds nothing left to drop."""
    _postgresql_only()
    with connection.schema_editor(collect_sql=True) as editor:
        MIGRATION._forwards(apps, editor)
        executed = editor.collected_sql
    assert executed == []


@pytest.mark.django_db(transaction=True)
def test_backwards_restores_djangos_indexes_and_forwards_drops_them_again():
    _postgresql_only()
    tables = _app_tables()
    migrated = _indexes(tables)
    try:
        with connection.schema_editor(atomic=False) as editor:
            MIGRATION._backwards(apps, editor)
        restored = _indexes(tables)
        added = {
            name: restored[name].split(" USING ", 1)[1] for name in set(restored) - set(migrated)
        }
        lines = OrderLine._meta.db_table
        name = connection.schema_editor()._create_index_name
        assert added[name(lines, ["order_id"])] == "btree (order_id)"
        assert added[name(lines, ["variant_id"], suffix="_like")] == (
            "btree (variant_id varchar_pattern_ops)"
        )
        assert len(added) == len(MIGRATION.PLAIN) + len(MIGRATION.LIKE_COPIES)
        assert set(migrated) <= set(restored)
    finally:
        with connection.schema_editor(atomic=False) as editor:
            MIGRATION._forwards(apps, editor)
    assert _indexes(tables) == migrated
