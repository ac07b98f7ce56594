"""Leave room in order line pages for the updates of their quantities (fillfactor 70).

Order lines are written once by ``COPY`` into full pages and then updated by later events of
the same order (a fulfilment or a refund rewrites the quantities of every line of the order:
28,000 line updates for a 9,000-event UCI backlog). With no free space on the page PostgreSQL
cannot make those updates HOT, so each one inserted a new entry into every one of the line
table's seven indexes although no indexed value changed (2% of line updates were HOT), and
that UPDATE was a third of the database's running time in a worker's drain. With 30% of each
page free, an order's lines (written together, so on the same page) mostly stay on their page
and touch no index: 55% HOT, PostgreSQL CPU per drained event 0.51 -> 0.45 ms (fillfactor
85: 30% HOT, 0.48 ms; 60: 74%, 0.43 ms, for two thirds more pages). New line pages take about
40% more space, partly paid back by indexes that no longer grow with every update. Orders
are left alone: their updates change indexed values, so they cannot be HOT anyway. Only
pages written from now on are affected; nothing is rewritten. SQLite (the demo) has no such
setting.
"""

from django.db import migrations

FILLFACTOR = 70


def _set_fillfactor(value: int | None):  # type: ignore[no-untyped-def]
    def apply(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name(
            apps.get_model("saleor_crm_plugin", "OrderLine")._meta.db_table
        )
        setting = f"SET (fillfactor = {value})" if value else "RESET (fillfactor)"
        schema_editor.execute(f"ALTER TABLE {table} {setting}")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("saleor_crm_plugin", "0013_inbox_raw_body_lz4"),
    ]

    operations = [
        migrations.RunPython(_set_fillfactor(FILLFACTOR), _set_fillfactor(None), elidable=True),
    ]
