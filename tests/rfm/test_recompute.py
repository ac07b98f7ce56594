"""Recompute on PostgreSQL: who counts, what R/F/M mean, scores, and engine/mode agreement."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer, Order, OrderStatus
from saleor_crm_plugin.customers.projection import refresh_customer_stats
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.error_codes import RfmErrorCode
from saleor_crm_plugin.rfm.exceptions import RfmError
from saleor_crm_plugin.rfm.models import CustomerRfm, RfmRunKind
from tests.rfm.conftest import AS_OF, CHANNEL, rfm_state

ENGINES = ["sql", "python"]


@pytest.fixture
def small_store(make_customer, make_order):
    c = {name: make_customer(f"{name}@example.com") for name in "abcdef"}
    c["g"] = make_customer("g@example.com", guest=True)
    make_order(c["a"], days_ago=1, charged="100")
    make_order(c["a"], days_ago=20, charged="50")
    make_order(c["a"], days_ago=40, charged="30")
    make_order(c["a"], days_ago=2, charged="999", channel="Q2hhbm5lbDoy")  # other channel
    make_order(c["b"], days_ago=5, charged="10")
    make_order(c["b"], days_ago=-3, charged="10")  # paid after as_of: not yet
    make_order(c["c"], days_ago=100, charged="500")
    make_order(c["c"], days_ago=400, charged="1000")  # outside the 365-day window
    make_order(c["d"], days_ago=30, charged="200")
    make_order(c["d"], days_ago=60, charged="20")  # 100 paid, 80 refunded: Saleor keeps 20
    make_order(c["d"], days_ago=3, charged="70", status=OrderStatus.CANCELED)
    make_order(c["d"], days_ago=4, paid=False, status=OrderStatus.UNFULFILLED)
    make_order(c["e"], days_ago=500, charged="70")
    make_order(c["f"], days_ago=2, charged="5000")
    make_order(c["g"], days_ago=200, charged="60")
    make_order(None, days_ago=2, charged="80")  # no customer at all
    c["f"].erased_at = AS_OF - timedelta(days=1)
    c["f"].save()
    return c


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_scores_and_segments_of_a_small_store(small_store, engine):
    run = services.recompute(CHANNEL, as_of=AS_OF, engine=engine)

    assert run.kind == RfmRunKind.FULL
    assert run.customer_count == 6  # erased f, the other channel and the anonymous order: out
    assert run.recency_cuts == [5, 30, 100, 200]
    assert run.frequency_cuts == [1, 1, 1, 2]
    assert run.monetary_cuts == ["10.000", "60.000", "180.000", "220.000"]
    rows = {
        r.customer.email: (
            services.recency_days(r, run),
            r.frequency,
            r.monetary,
            r.scores,
            r.segment,
        )
        for r in CustomerRfm.objects.select_related("customer")
    }
    assert rows == {
        "a@example.com": (1, 3, Decimal("180.000"), "R5F5M3", "champions"),
        "b@example.com": (5, 1, Decimal("10.000"), "R5F1M1", "new"),
        "c@example.com": (100, 1, Decimal("500.000"), "R3F1M5", "about_to_sleep"),
        "d@example.com": (30, 2, Decimal("220.000"), "R4F4M4", "loyal"),
        "e@example.com": (500, 0, Decimal("0.000"), "R1F1M1", "hibernating"),
        "g@example.com": (200, 1, Decimal("60.000"), "R2F1M2", "hibernating"),
    }
    other = services.recompute("Q2hhbm5lbDoy", as_of=AS_OF, engine=engine)
    assert other.customer_count == 1
    # alone in its channel: every cut point is its own value, so R5 F1 (one order)
    assert CustomerRfm.objects.get(channel_id="Q2hhbm5lbDoy").scores == "R5F1M1"


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_lifetime_window_counts_every_paid_order(small_store, engine):
    services.recompute(CHANNEL, as_of=AS_OF, engine=engine, frequency_window_days=0)

    c = CustomerRfm.objects.get(customer=small_store["c"])
    assert (c.frequency, c.monetary) == (2, Decimal("1500.000"))
    e = CustomerRfm.objects.get(customer=small_store["e"])
    assert (e.frequency, e.monetary) == (1, Decimal("70.000"))


@pytest.mark.django_db
def test_bad_arguments_are_rejected_before_anything_is_written(small_store):
    with pytest.raises(RfmError) as info:
        services.recompute(CHANNEL, as_of=AS_OF, frequency_window_days=-3)
    assert (info.value.code, info.value.field) == (
        RfmErrorCode.INVALID_WINDOW,
        "frequency_window_days",
    )
    with pytest.raises(RfmError) as info:
        services.recompute(CHANNEL, as_of=AS_OF.replace(tzinfo=None))
    assert info.value.code == RfmErrorCode.INVALID_AS_OF
    with pytest.raises(RfmError) as info:
        services.resolve_channel("nope")
    assert (info.value.code, info.value.field) == (RfmErrorCode.CHANNEL_NOT_FOUND, "channel")
    assert not CustomerRfm.objects.exists()
    assert services.resolve_channel("default-channel").channel_id == CHANNEL


def _random_store(make_customer, make_order, rng, customers=120):
    people = [make_customer(guest=rng.random() < 0.1) for _ in range(customers)]
    for person in people:
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 5, 8])):
            make_order(
                person,
                days_ago=rng.uniform(-20, 700),
                charged=str(Decimal(rng.randint(100, 40000)) / 100),
                refresh=False,
            )
    refresh_customer_stats([p.pk for p in people])
    return people


@pytest.mark.django_db
@pytest.mark.parametrize("first,second", [("sql", "python"), ("python", "sql")])
def test_sql_and_python_engines_agree(make_customer, make_order, first, second):
    _random_store(make_customer, make_order, random.Random(11))
    run = services.recompute(CHANNEL, as_of=AS_OF, engine=first)
    state = rfm_state()

    again = services.recompute(CHANNEL, as_of=AS_OF, engine=second, full=True)

    assert again.changed_count == 0
    assert rfm_state() == state
    assert (again.recency_cuts, again.frequency_cuts, again.monetary_cuts) == (
        run.recency_cuts,
        run.frequency_cuts,
        run.monetary_cuts,
    )


def _backdate_everything():
    """Make the existing data look old, so only what a test changes next is 'recent'."""
    hour_ago = timezone.now() - timedelta(hours=1)
    Order.objects.update(projected_at=hour_ago)
    Customer.objects.update(updated_at=hour_ago)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_incremental_and_full_recompute_agree_exactly(make_customer, make_order, engine):
    rng = random.Random(5)
    people = _random_store(make_customer, make_order, rng)
    _backdate_everything()
    services.recompute(CHANNEL, as_of=AS_OF - timedelta(days=30), engine=engine)
    _backdate_everything()

    # a month of business: new orders, a refund, a cancellation, an erasure, new customers,
    # and a guest's orders merged into a registered customer without re-saving the orders
    for person in rng.sample(people, 15):
        make_order(person, days_ago=rng.uniform(0, 30), charged="42.50")
    refunded = Order.objects.filter(customer=people[3]).first()
    refunded.total_charged = Decimal("1.000")
    refunded.save()
    cancelled = Order.objects.filter(customer=people[4]).first()
    cancelled.status = OrderStatus.CANCELED
    cancelled.save()
    refresh_customer_stats([people[3].pk, people[4].pk])
    people[5].erased_at = timezone.now()
    people[5].save()
    for _ in range(4):
        make_order(make_customer(), days_ago=rng.uniform(0, 30), charged="19.99")
    guest = make_customer(guest=True)
    make_order(guest, days_ago=500, charged="300", refresh=False)
    make_order(guest, days_ago=10, charged="300")
    _backdate_everything()
    Order.objects.filter(customer=guest).update(customer=people[6])
    refresh_customer_stats([guest.pk, people[6].pk])

    incremental = services.recompute(CHANNEL, as_of=AS_OF, engine=engine)
    assert incremental.kind == RfmRunKind.INCREMENTAL
    assert incremental.recomputed_count < incremental.customer_count
    assert not CustomerRfm.objects.filter(customer=people[5]).exists()
    after_incremental = rfm_state()

    full = services.recompute(CHANNEL, as_of=AS_OF, engine=engine, full=True)

    assert full.kind == RfmRunKind.FULL
    assert full.recomputed_count == full.customer_count
    assert full.changed_count == 0
    assert rfm_state() == after_incremental
    assert (full.recency_cuts, full.frequency_cuts, full.monetary_cuts) == (
        incremental.recency_cuts,
        incremental.frequency_cuts,
        incremental.monetary_cuts,
    )


@pytest.mark.django_db
def test_a_run_with_an_earlier_as_of_or_another_window_is_full(small_store):
    services.recompute(CHANNEL, as_of=AS_OF)
    assert services.recompute(CHANNEL, as_of=AS_OF).kind == RfmRunKind.INCREMENTAL
    earlier = services.recompute(CHANNEL, as_of=AS_OF - timedelta(days=1))
    assert earlier.kind == RfmRunKind.FULL
    lifetime = services.recompute(CHANNEL, as_of=AS_OF, frequency_window_days=0)
    assert lifetime.kind == RfmRunKind.FULL
    assert lifetime.frequency_window_days is None
