"""The worker's cheaper code paths give exactly what the plain Django ones gave.

Bulk writes convert values without Django's per-value calls, bind parameters on the server,
write only changed line columns and COPY small batches; loyalty folds the batch's customer
events into one replay; payload amounts and new lines are built by faster routes. Each is
checked here against the route it replaced.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from saleor_crm_plugin.core import bulk, compat
from saleor_crm_plugin.core.money import to_decimal
from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.models import Customer, CustomerLink, Order, OrderLine
from saleor_crm_plugin.events import inbox, types
from saleor_crm_plugin.events.types import EventKind, OrderLineSnapshot
from saleor_crm_plugin.loyalty import earning
from saleor_crm_plugin.loyalty.models import LedgerEntry, PointLot
from tests.loyalty.builders import account, customer_event, order_event, user_id

NO_TIERS = {"tiers": [{"code": "member", "threshold": 0, "multiplier": 1}]}
pg_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the fast paths are PostgreSQL's"
)


def _order(**fields) -> Order:
    values = {
        "saleor_order_id": "O-1",
        "channel_id": "C",
        "currency": "USD",
        "status": "UNFULFILLED",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    values.update(fields)
    return Order(**values)


def _lines(order: Order, count: int) -> list[OrderLine]:
    """``count`` unsaved lines of ``order``, two at 1.00 each."""
    return [
        OrderLine(
            order=order,
            saleor_line_id=f"L-{n}",
            quantity=2,
            unit_price_gross=Decimal(1),
            unit_price_net=Decimal(1),
            total_price_gross=Decimal(2),
        )
        for n in range(count)
    ]


# -- value conversion ------------------------------------------------------------------------


def _django_values(row, columns):
    return [c.get_db_prep_save(getattr(row, c.attname), connection) for c in columns]


def _comparable(value):
    return getattr(value, "obj", value)  # Jsonb wrappers compare by what they wrap


@pytest.mark.django_db
def test_prepared_values_equal_djangos_conversion():
    customer = Customer(
        saleor_user_id="U-1",
        email="a@example.com",
        is_active=True,
        metadata={"k": "v"},
        date_joined=datetime(2025, 5, 1, 12, tzinfo=UTC),
        order_count=3,
    )
    order = _order(
        customer_link=CustomerLink.USER_ID,  # an IntegerChoices member, not a plain int
        total_gross=Decimal("12.500"),
        field_versions={},
        paid_at=None,
    )
    for row in (customer, order):
        columns = [f for f in type(row)._meta.concrete_fields if not f.primary_key]
        ours = bulk.prepared_values([row], columns)[0]
        assert [_comparable(v) for v in ours] == [
            _comparable(v) for v in _django_values(row, columns)
        ]


@pytest.mark.django_db
def test_values_django_would_change_or_refuse_still_go_through_django():
    field = Order._meta.get_field("paid_at")
    naive = datetime(2026, 1, 1, 12)  # noqa: DTZ001 - a naive value is the point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = bulk.prepared_values([_order(paid_at=naive)], [field])[0][0]
        expected = field.get_db_prep_save(naive, connection)
    assert ours == expected

    with pytest.raises(ValidationError):
        total = Order._meta.get_field("total_gross")
        bulk.prepared_values([_order(total_gross=Decimal("NaN"))], [total])

    count = Customer._meta.get_field("order_count")
    assert bulk.prepared_values([Customer(order_count=True)], [count]) == [
        [count.get_db_prep_save(True, connection)]
    ]
    metadata = Customer._meta.get_field("metadata")
    assert bulk.prepared_values([Customer(metadata=None)], [metadata]) == [[None]]


# -- writes ----------------------------------------------------------------------------------


@pg_only
@pytest.mark.django_db(transaction=True)
def test_a_unique_conflict_in_copy_is_djangos_integrity_error():
    bulk.insert_rows(Order, [_order()])
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert_rows(Order, [_order()])
    assert Order.objects.count() == 1


@pg_only
@pytest.mark.django_db
def test_execute_many_is_seen_by_django_and_maps_errors():
    orders = [_order(saleor_order_id=f"O-{n}") for n in range(3)]
    bulk.insert_rows(Order, orders)
    with CaptureQueriesContext(connection) as queries:
        bulk.execute_many(
            'UPDATE "saleor_crm_plugin_order" SET "number" = %s WHERE "id" = %s',
            [[f"#{o.pk}", o.pk] for o in orders],
        )
    assert any('SET "number"' in q["sql"] for q in queries.captured_queries)
    assert sorted(Order.objects.values_list("number", flat=True)) == sorted(
        f"#{o.pk}" for o in orders
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.execute_many(
            'UPDATE "saleor_crm_plugin_order" SET "saleor_order_id" = %s WHERE "id" = %s',
            [["O-0", orders[1].pk]],
        )


@pg_only
@pytest.mark.django_db
def test_update_rows_writes_a_set_in_one_statement_with_the_per_row_semantics():
    orders = [_order(saleor_order_id=f"O-{n}") for n in range(4)]
    bulk.insert_rows(Order, orders)
    for n, order in enumerate(orders):
        order.number = f"#{n}"
        order.total_gross = Decimal("1.23456")  # rounded by the column, as a bound value is
        order.paid_at = datetime(2026, 2, n + 1, tzinfo=UTC) if n % 2 else None
    names = ["number", "total_gross", "paid_at"]
    with CaptureQueriesContext(connection) as queries:
        bulk.update_rows(Order, orders, names)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1 and "unnest" in updates[0]
    stored = {
        o.saleor_order_id: (o.number, o.total_gross, o.paid_at)
        for o in Order.objects.filter(pk__in=[o.pk for o in orders])
    }
    assert stored == {
        f"O-{n}": (
            f"#{n}",
            Decimal("1.235"),
            datetime(2026, 2, n + 1, tzinfo=UTC) if n % 2 else None,
        )
        for n in range(4)
    }

    # Only NULLs in a column: typed by the field
    for order in orders:
        order.paid_at = None
    bulk.update_rows(Order, orders, ["paid_at"])
    assert set(Order.objects.values_list("paid_at", flat=True)) == {None}

    # A value too long for its varchar still fails (an explicit cast would truncate it)
    orders[0].number = "x" * 300
    with pytest.raises(DataError), transaction.atomic():
        bulk.update_rows(Order, orders, ["number"])


@pg_only
@pytest.mark.django_db
def test_update_rows_keeps_the_per_row_statement_for_repeats_and_non_plain_values():
    orders = [_order(saleor_order_id=f"O-{n}") for n in range(2)]
    bulk.insert_rows(Order, orders)
    twice = Order.objects.get(pk=orders[0].pk)
    orders[0].number, twice.number = "first", "last"
    # A JSON scalar (no list or dict): Django's adapter, row by row
    orders[1].field_versions = "core"
    with CaptureQueriesContext(connection) as queries:
        bulk.update_rows(Order, [orders[0], twice], ["number"])  # the last one wins
        bulk.update_rows(Order, orders, ["field_versions"])
    assert not any("unnest" in q["sql"] for q in queries.captured_queries)
    assert Order.objects.get(pk=orders[0].pk).number == "last"
    assert Order.objects.get(pk=orders[1].pk).field_versions == "core"


@pg_only
@pytest.mark.django_db
def test_line_quantity_updates_stay_on_their_page_without_touching_indexes():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", [OrderLine._meta.db_table]
        )
        assert cursor.fetchone() == (["fillfactor=70"],)
    order = _order()
    bulk.insert_rows(Order, [order])
    lines = _lines(order, 400)
    bulk.insert_rows(OrderLine, lines)  # COPY, as a batch writes them: several pages
    # the first page's first lines (full pages without the setting: none of this is HOT)
    first = list(OrderLine.objects.filter(order=order).order_by("pk")[:10])
    for line in first:
        line.quantity_fulfilled = 2

    def updates() -> tuple[int, int]:  # this transaction's, whatever ran in it before
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
                [OrderLine._meta.db_table],
            )
            return cursor.fetchone()

    before = updates()
    bulk.update_rows(OrderLine, first, ["quantity_fulfilled"])
    after = updates()
    assert (after[0] - before[0], after[1] - before[1]) == (10, 10)


@pytest.mark.django_db
def test_update_lines_sends_only_the_columns_that_changed():
    order = _order()
    order.save()
    lines = _lines(order, 3)
    OrderLine.objects.bulk_create(lines)
    loaded = list(OrderLine.objects.filter(order=order).order_by("saleor_line_id"))
    before = {id(line): projection.line_state(line) for line in loaded}
    loaded[0].quantity_fulfilled = 2
    loaded[1].quantity_refunded = 1
    loaded[1].product_name = "renamed"
    # loaded[2] unchanged

    with CaptureQueriesContext(connection) as queries:
        projection.update_lines(loaded, before=before)

    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert all('"sku"' not in sql and '"unit_price_gross"' not in sql for sql in updates)
    state = {
        line.saleor_line_id: (line.quantity_fulfilled, line.quantity_refunded, line.product_name)
        for line in OrderLine.objects.filter(order=order)
    }
    assert state == {"L-0": (2, 0, ""), "L-1": (0, 1, "renamed"), "L-2": (0, 0, "")}


def test_new_lines_are_what_keyword_construction_and_the_merge_steps_gave():
    order = _order()
    snap = OrderLineSnapshot(
        saleor_line_id="L-1",
        product_name="Mug",
        variant_name="Blue",
        quantity=3,
        unit_price_gross=Decimal("2.500"),
        unit_price_net=Decimal("2.000"),
        total_price_gross=Decimal("7.500"),
        variant_id="V-1",
        product_id="P-1",
        category_slug="kitchen",
        attributes=("colour:blue", "size:m"),
        quantity_fulfilled=1,
    )
    fast = projection._new_line(order, snap)

    slow = OrderLine(order=order, saleor_line_id=snap.saleor_line_id)
    projection._set_line_values(slow, snap)
    slow.quantity_fulfilled = snap.quantity_fulfilled or 0
    slow.quantity_refunded = snap.quantity_refunded or 0
    projection._fill_line_facts(slow, snap)

    for field in OrderLine._meta.concrete_fields:
        assert getattr(fast, field.attname) == getattr(slow, field.attname), field.name
        assert type(getattr(fast, field.attname)) is type(getattr(slow, field.attname))
    assert fast.__dict__.keys() == slow.__dict__.keys()
    assert fast._state.fields_cache == slow._state.fields_cache == {"order": order}
    assert fast._state.adding is slow._state.adding is True
    assert fast.order is order
    assert fast.attributes == ["colour:blue", "size:m"]
    assert projection._new_line(order, snap).attributes is not fast.attributes
    empty = projection._new_line(order, OrderLineSnapshot("L-2", "", "", 1, *[Decimal(1)] * 3))
    assert empty.attributes == [] and empty.attributes is not fast.attributes
    blank = OrderLineSnapshot("L-3", "", "", 1, *[Decimal(1)] * 3, variant_id="", attributes=())
    assert projection._new_line(order, blank).attributes == []
    assert projection._new_line(order, blank).variant_id == ""
    assert projection._new_line(order, blank).attributes is not empty.attributes
    assert empty._state.adding is True and empty._state.db is None


@pytest.mark.django_db
def test_new_lines_run_the_constructor_when_someone_listens_to_init():
    from django.db.models.signals import post_init

    seen = []

    def listener(sender, instance, **kwargs):
        seen.append(instance.saleor_line_id)

    post_init.connect(listener, sender=OrderLine)
    try:
        snap = OrderLineSnapshot("L-9", "Mug", "", 1, *[Decimal(1)] * 3)
        line = projection._new_line(_order(), snap)
    finally:
        post_init.disconnect(listener, sender=OrderLine)
    assert seen == ["L-9"]
    assert (line.saleor_line_id, line.quantity, line.attributes) == ("L-9", 1, [])


@pg_only
@pytest.mark.django_db
def test_json_columns_copied_as_text_read_back_the_same():
    order = _order()
    order.save()
    odd = ["size:m", 'quote:"q"', "back\\slash", "tab\there", "new\nline", "ünï"]
    lines = [
        OrderLine(
            order=order,
            saleor_line_id=f"L-{n}",
            quantity=1,
            unit_price_gross=Decimal(1),
            unit_price_net=Decimal(1),
            total_price_gross=Decimal(1),
            attributes=attributes,
        )
        for n, attributes in enumerate([[], odd, ["plain"]])
    ]
    bulk.insert_rows(OrderLine, lines, set_ids=False)
    stored = dict(OrderLine.objects.values_list("saleor_line_id", "attributes"))
    assert stored == {"L-0": [], "L-1": odd, "L-2": ["plain"]}
    bulk.insert_rows(Order, [_order(saleor_order_id="O-2", field_versions={"k": ["v", 1]})])
    assert Order.objects.get(saleor_order_id="O-2").field_versions == {"k": ["v", 1]}


# -- payloads and settings -------------------------------------------------------------------


def test_stored_amounts_parse_as_to_decimal_does():
    for text in ("2.55", "2.550", " 7 ", "0", "-1.2345"):
        assert types._amount(text) == to_decimal(text)
        assert types._amount(text) == to_decimal(text)  # from the cache
    assert types._amount(None) is None
    assert types._amount(3.1) == to_decimal(3.1)
    with pytest.raises(ValueError):
        types._amount("abc")
    with pytest.raises(ValueError):
        types._amount("NaN")


def test_outside_saleor_the_plugin_configuration_is_cached_empty():
    compat.clear_plugin_configuration_cache()
    assert compat.plugin_configuration() == {}
    assert compat._PLUGIN_CONFIG_CACHE is not None
    assert compat._PLUGIN_CONFIG_CACHE[1] == {}
    compat.clear_plugin_configuration_cache()


# -- loyalty: customer events folded into the batch's replay ---------------------------------


@pytest.mark.django_db
@override_settings(CRM_LOYALTY=NO_TIERS)
def test_a_batch_of_registrations_rewards_earlier_guest_orders_once():
    now = timezone.now()
    for event in (
        order_event(1, user=None, email="ann@example.com", created=now),
        order_event(2, user=None, email="bob@example.com", created=now),
    ):
        inbox.store_event(event, kick=False)
    inbox.process_pending()
    assert earning.unrewarded_orders([]) == []

    # one batch: two registrations (each with a guest order waiting) and an unrelated order
    for event in (
        customer_event(7, email="ann@example.com"),
        customer_event(8, email="bob@example.com"),
        order_event(3, user=9, created=now),
    ):
        inbox.store_event(event, kick=False)
    assert inbox.process_pending() == 3

    assert [account(n).pending for n in (7, 8, 9)] == [90, 90, 90]
    assert earning.unrewarded_orders([user_id(7), user_id(8)]) == []
    assert len(earning.unrewarded_orders([user_id(9)])) == 0
    entries = LedgerEntry.objects.count()
    lots = PointLot.objects.count()

    # replayed registrations (new deliveries of the same facts) post nothing more
    for event in (
        customer_event(7, email="ann@example.com", at=now, kind=EventKind.CUSTOMER_UPDATED),
        customer_event(8, email="bob@example.com", at=now, kind=EventKind.CUSTOMER_UPDATED),
    ):
        inbox.store_event(event, kick=False)
    inbox.process_pending()
    assert (LedgerEntry.objects.count(), PointLot.objects.count()) == (entries, lots)
    assert [account(n).pending for n in (7, 8, 9)] == [90, 90, 90]


@pytest.mark.django_db
def test_in_array_selects_what_in_selects(monkeypatch):
    from django.db.models import F

    from saleor_crm_plugin.core.bulk import InArray

    a = Customer.objects.create(email="a@x.io", saleor_user_id="U-a")
    b = Customer.objects.create(email="b@x.io")
    Customer.objects.create(email="c@x.io", saleor_user_id="U-c")
    cases = [("pk", {a.pk, b.pk, 10**12}), ("saleor_user_id", ["U-a", "U-zz"]), ("email", [])]
    cases.append(("email", ("b@x.io", "c@x.io")))

    def both(field, values):
        expected = set(Customer.objects.filter(**{f"{field}__in": values}))
        assert set(Customer.objects.filter(InArray(F(field), values))) == expected
        return expected

    for field, values in cases:
        found = both(field, values)
        assert len(found) == {"pk": 2, "saleor_user_id": 1}.get(field, 0 if not values else 2)
    either = Customer.objects.filter(
        Q(InArray(F("saleor_user_id"), ["U-c"])) | Q(InArray(F("email"), ["b@x.io"]))
    )
    assert {c.email for c in either} == {"b@x.io", "c@x.io"}
    if connection.vendor == "postgresql":
        sql = str(Customer.objects.filter(InArray(F("pk"), [1])).query)
        assert "= ANY(" in sql
        # Other databases (SQLite for the demo) compile Django's own IN.
        monkeypatch.setattr(connection, "vendor", "sqlite")
        sql = str(Customer.objects.filter(InArray(F("pk"), [1, 2])).query)
        assert " IN (1, 2)" in sql and "ANY" not in sql


def _attributes(row: object) -> dict[str, object]:
    return {k: v for k, v in vars(row).items() if k != "_state"}


@pytest.mark.django_db
def test_new_instance_gives_what_the_constructor_gives_and_falls_back_when_it_must():
    from saleor_crm_plugin.core.rows import new_instance

    created = timezone.now()
    order = Order(currency="EUR", created_at=created)
    fast = new_instance(OrderLine, order=order, quantity=3, product_name="Mug")
    slow = OrderLine(order=order, quantity=3, product_name="Mug")
    assert _attributes(fast) == _attributes(slow)
    assert fast.order is order and fast._state.adding and fast.pk is None
    # A name the model only understands through __init__ (the primary key alias) and a typo
    # both go through the real constructor: the alias is honoured, the typo refused.
    assert new_instance(Order, pk=7, currency="EUR").id == 7
    with pytest.raises(TypeError):
        new_instance(Order, no_such_field=1)


@pytest.mark.parametrize("signal_name", ["pre_init", "post_init"])
def test_init_receivers_follows_connects_and_disconnects_after_a_cached_answer(signal_name):
    """``init_receivers`` answers "none" from the signal's sender cache (as ``send`` does):
    a receiver connected later, for this model or for every sender, must still be seen."""
    from django.db.models import signals

    from saleor_crm_plugin.core.rows import init_receivers
    from saleor_crm_plugin.loyalty.models import LedgerEntry, PointLot

    signal = getattr(signals, signal_name)

    def listener(sender, **kwargs):
        pass

    assert init_receivers(PointLot) is False
    assert init_receivers(PointLot) is False  # now from the cache
    signal.connect(listener, sender=LedgerEntry)
    try:
        assert init_receivers(PointLot) is False  # another model's receiver
        assert init_receivers(PointLot) is False
        assert init_receivers(LedgerEntry) is True
        signal.connect(listener, sender=PointLot)
        assert init_receivers(PointLot) is True
        signal.disconnect(listener, sender=PointLot)
        assert init_receivers(PointLot) is False
        signal.connect(listener)  # any sender
        assert init_receivers(PointLot) is True
        signal.disconnect(listener)
    finally:
        signal.disconnect(listener, sender=LedgerEntry)
    assert init_receivers(PointLot) is False
    assert init_receivers(LedgerEntry) is False


@pytest.mark.django_db
def test_the_claim_reads_what_the_orm_claim_read():
    """``inbox._claim`` (hand-written SQL) against the queryset it replaced: the same rows in
    the same order, the same loaded values, the same columns left deferred, and locked."""
    from datetime import timedelta

    from saleor_crm_plugin.events.models import InboxEvent, InboxStatus

    for n in range(4):
        inbox.store_event(order_event(n, user=n), kick=False)
    inbox.store_webhook(
        dedupe_key="raw-1", kind="order_created", saleor_api_url="https://s/graphql/",
        raw_body='{"x": 1}', kick=False,
    )  # fmt: skip
    InboxEvent.objects.filter(dedupe_key=order_event(2, user=2).dedupe_key).update(
        status=InboxStatus.DONE
    )
    InboxEvent.objects.filter(dedupe_key=order_event(3, user=3).dedupe_key).update(
        available_at=timezone.now() + timedelta(hours=1)
    )
    now = timezone.now()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        fast = inbox._claim(10, now)
    slow = list(
        InboxEvent.objects.filter(status=InboxStatus.PENDING, available_at__lte=now)
        .defer(*inbox._NOT_NEEDED_TO_PROCESS)
        .order_by("available_at", "id")[:10]
    )
    assert [r.pk for r in fast] == [r.pk for r in slow] and len(fast) == 3
    for a, b in zip(fast, slow, strict=True):
        assert a.get_deferred_fields() == b.get_deferred_fields() != set()
        loaded = {f.attname for f in InboxEvent._meta.concrete_fields} - b.get_deferred_fields()
        assert {n: getattr(a, n) for n in loaded} == {n: getattr(b, n) for n in loaded}
        assert a._state.adding is False and a._state.db == "default"
    assert len(inbox._claim(1, now)) == 1
    if connection.vendor == "postgresql":
        assert queries.captured_queries[-1]["sql"].endswith("FOR UPDATE SKIP LOCKED")
