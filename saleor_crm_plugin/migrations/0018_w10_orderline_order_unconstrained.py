"""Order lines' foreign key to their order without a database constraint.

Django makes every foreign key a ``DEFERRABLE INITIALLY DEFERRED`` constraint, which
PostgreSQL checks at commit by one query per inserted row (``SELECT 1 FROM order WHERE id = $1
FOR KEY SHARE``, run through SPI). An inbox batch of 500 UCI events COPYs ~4,000 new lines, and
those checks were the largest part of the batch's COMMIT: per-statement backend CPU of
``bench.worker_cpu --statements`` with the constraints made immediate put them at ~56 µs per
event of ~425 (13% of PostgreSQL's CPU in the drain; the line COPY itself is ~72).

What the constraint guarded cannot happen through the app: lines are written only by the
projection (``customers.batch`` and ``customers.projection``), for an order the same
transaction has just locked ``FOR UPDATE`` or inserted, and orders are deleted only through
Django, whose collector deletes an order's lines first (``on_delete=CASCADE`` is Django's,
the database constraint never cascaded). ``CustomerRfm`` and ``RfmSegmentHistory`` made the
same choice for the same reason. The column keeps its index (``crm_orderline_uniq`` leads
with it). Backwards adds the constraint again (Django validates the existing rows).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("saleor_crm_plugin", "0017_lean_projection_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="orderline",
            name="order",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="lines",
                to="saleor_crm_plugin.order",
            ),
        ),
    ]
