"""Ledger entries' foreign keys to their account and lot without database constraints.

Django makes every foreign key a ``DEFERRABLE INITIALLY DEFERRED`` constraint, which
PostgreSQL checks at commit by one query per inserted row and key (``SELECT 1 FROM ... WHERE
id = $1 FOR KEY SHARE`` through SPI, an executor start and end each). The worker posts ~0.8
ledger entries per UCI event, and the two checks were more than half of an entry's cost:
``bench.worker_pg_probes --callgrind``, an entry's insert with its commit, 137.2k PostgreSQL
instructions as shipped, 63.5k without the two constraints (-54%, ~59k per event).

What the constraints guarded cannot happen through the app, as migration 0018 found for
order lines: entries are written only by the loyalty ledger (``loyalty.ledger``), for an
account and a lot the same transaction has loaded or just inserted, and neither accounts
nor lots are ever deleted (no code path does; Django's ``PROTECT`` of ``Customer ->
LoyaltyAccount``, ``LoyaltyAccount -> PointLot`` and ``-> LedgerEntry`` and ``PointLot ->
LedgerEntry`` refuses such a deletion at the ORM level, and it still does: ``on_delete`` is
Django's, not the database's). Entries are append-only. ``LotConsumption``'s keys stay
(few rows, not the drain's path). The columns keep their indexes (the account by
``crm_ledger_account_sum_idx``, the lot by its own). Backwards adds the constraints again
(Django validates the existing rows).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("saleor_crm_plugin", "0019_inbox_attempts_unchecked"),
    ]

    operations = [
        migrations.AlterField(
            model_name="ledgerentry",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="saleor_crm_plugin.loyaltyaccount",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="lot",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="saleor_crm_plugin.pointlot",
            ),
        ),
    ]
