"""Drop the indexes no query can use from the projection, loyalty and other tables.

Every event the worker applies inserts or rewrites order lines, orders, customers, channel
stats, loyalty accounts, lots and ledger entries, and each row written adds an entry to every
index of its table (an update too, unless it is HOT). Under a live stream of UCI deliveries
the order lines' ``COPY`` was the largest statement after the acknowledgement's insert, at
seven index entries per line (``pg_stat_statements``: 1.1 M WAL records for 155 k lines).
Two kinds of index bought nothing:

* Django's ``*_like`` copies (``varchar_pattern_ops``), made on PostgreSQL for every
  ``CharField`` with ``unique=True`` or ``db_index=True``, serve only ``LIKE 'prefix%'``.
  Nothing here filters these columns with ``LIKE``: the staff searches use ``icontains`` /
  ``iexact`` (``UPPER(...)``), which no btree on the column can serve. 0015 did the same for
  the inbox.
* Single-column indexes that another index of the table already leads with: a foreign key's
  own index next to a unique constraint or composite index starting with the same column
  (``OrderLine.order`` and ``crm_orderline_uniq``, ``Order.customer`` and
  ``crm_order_customer_idx``, ...). PostgreSQL serves the same lookups, the foreign key's
  checks and the cascades from the composite one. ``Order.user_email`` and
  ``OrderLine.variant_id`` were indexed for lookups that never came (orders are linked to
  customers through the customer's e-mail; lines are looked up by product).

The order lines go from seven index entries per row to three, orders from ten to six,
customers from eight to five, lots from nine to six, ledger entries from eight to six.

The ``*_like`` copies are not in Django's model state (it creates them implicitly), so only
the database changes for them; a later migration that changes such a column's type or
uniqueness would make Django create the copy again, and ``tests/core/test_lean_indexes.py``
fails if any app table has one. The single-column indexes are in the state (``db_index``),
which now says ``False``. On PostgreSQL everything is dropped ``CONCURRENTLY`` (no lock that
would hold back the worker's writes), outside a transaction: hence ``atomic = False``. The
indexes are found by column and kind, not by name (Django's names depend on its version),
and a repeated run finds nothing left to drop. Backwards recreates them under Django's names.
SQLite (the demo) has no ``*_like`` indexes and runs the state operations as they are.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

from saleor_crm_plugin.core.migration_operations import (
    PATTERN_OPCLASSES,
    DatabaseWorkUnlessPostgreSQL,
    create_index_concurrently,
    drop_index_concurrently,
    indexes_on_column,
)

# (model, column) of each ``CharField`` whose ``*_like`` copy goes.
LIKE_COPIES = [
    ("Customer", "saleor_user_id"),
    ("Customer", "email"),
    ("Customer", "email_hash"),
    ("Order", "saleor_order_id"),
    ("Order", "user_email"),
    ("OrderLine", "variant_id"),
    ("OrderLine", "product_id"),
    ("PointLot", "key"),
    ("PointLot", "order_id"),
    ("LedgerEntry", "idempotency_key"),
    ("Redemption", "idempotency_key"),
    ("LoyaltyProgramOverride", "channel"),
    ("MetadataWriteback", "object_id"),
    ("ProductRule", "product_id"),
    ("RfmSegmentMap", "channel_id"),
    ("SaleorInstance", "saleor_api_url"),
]


def _unindexed_foreign_key(model_name: str, name: str, to: str, **options: Any) -> Any:
    """The ``AlterField`` that leaves a foreign key's own index out of the state."""
    return migrations.AlterField(
        model_name=model_name,
        name=name,
        field=models.ForeignKey(db_index=False, to=f"saleor_crm_plugin.{to}", **options),
    )


_CASCADE = django.db.models.deletion.CASCADE
_PROTECT = django.db.models.deletion.PROTECT
_SET_NULL = django.db.models.deletion.SET_NULL

# (model, column) of each single-column index that goes, with the field's new state.
PLAIN = [
    (
        "CustomerChannelStats",
        "customer_id",
        _unindexed_foreign_key(
            "customerchannelstats",
            "customer",
            "customer",
            on_delete=_CASCADE,
            related_name="channel_stats",
        ),
    ),
    (
        "CustomerRfm",
        "customer_id",
        _unindexed_foreign_key(
            "customerrfm",
            "customer",
            "customer",
            db_constraint=False,
            on_delete=_CASCADE,
            related_name="rfm",
        ),
    ),
    (
        "LedgerEntry",
        "account_id",
        _unindexed_foreign_key(
            "ledgerentry", "account", "loyaltyaccount", on_delete=_PROTECT, related_name="entries"
        ),
    ),
    (
        "LoyaltyAccount",
        "customer_id",
        _unindexed_foreign_key(
            "loyaltyaccount",
            "customer",
            "customer",
            on_delete=_PROTECT,
            related_name="loyalty_accounts",
        ),
    ),
    (
        "Order",
        "customer_id",
        _unindexed_foreign_key(
            "order",
            "customer",
            "customer",
            blank=True,
            null=True,
            on_delete=_SET_NULL,
            related_name="orders",
        ),
    ),
    (
        "Order",
        "user_email",
        migrations.AlterField(
            model_name="order",
            name="user_email",
            field=models.CharField(blank=True, default="", max_length=254),
        ),
    ),
    (
        "OrderLine",
        "order_id",
        _unindexed_foreign_key(
            "orderline", "order", "order", on_delete=_CASCADE, related_name="lines"
        ),
    ),
    (
        "OrderLine",
        "variant_id",
        migrations.AlterField(
            model_name="orderline",
            name="variant_id",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
    ),
    (
        "PointLot",
        "account_id",
        _unindexed_foreign_key(
            "pointlot", "account", "loyaltyaccount", on_delete=_PROTECT, related_name="lots"
        ),
    ),
    (
        "PrecomputedRecommendation",
        "run_id",
        _unindexed_foreign_key(
            "precomputedrecommendation",
            "run",
            "modelrun",
            on_delete=_CASCADE,
            related_name="precomputed",
        ),
    ),
    (
        "RfmSegmentHistory",
        "customer_id",
        _unindexed_foreign_key(
            "rfmsegmenthistory",
            "customer",
            "customer",
            db_constraint=False,
            on_delete=_CASCADE,
            related_name="rfm_history",
        ),
    ),
    (
        "StorefrontEvent",
        "customer_id",
        _unindexed_foreign_key(
            "storefrontevent",
            "customer",
            "customer",
            blank=True,
            null=True,
            on_delete=_SET_NULL,
            related_name="+",
        ),
    ),
]


def _table(apps: Any, model: str) -> str:
    return apps.get_model("saleor_crm_plugin", model)._meta.db_table


def _forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, column in LIKE_COPIES:
        for name, _unique, opclass, _owned in indexes_on_column(
            schema_editor, _table(apps, model), column
        ):
            if opclass in PATTERN_OPCLASSES:
                drop_index_concurrently(schema_editor, name)
    for model, column, _operation in PLAIN:
        for name, unique, opclass, owned in indexes_on_column(
            schema_editor, _table(apps, model), column
        ):
            if not unique and not owned and opclass not in PATTERN_OPCLASSES:
                drop_index_concurrently(schema_editor, name)


def _backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, column, _operation in PLAIN:
        create_index_concurrently(schema_editor, _table(apps, model), column)
    for model, column in LIKE_COPIES:
        create_index_concurrently(
            schema_editor,
            _table(apps, model),
            column,
            suffix="_like",
            opclass="varchar_pattern_ops",
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("saleor_crm_plugin", "0016_inbox_lean_indexes"),
    ]

    operations = [
        migrations.RunPython(_forwards, _backwards),
        DatabaseWorkUnlessPostgreSQL([operation for _model, _column, operation in PLAIN]),
    ]
