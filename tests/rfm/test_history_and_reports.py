"""Segment history per run, the from/to matrix, the segment summary, lists and CSV export."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from saleor_crm_plugin.customers.models import OrderStatus
from saleor_crm_plugin.customers.projection import refresh_customer_stats
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.error_codes import RfmErrorCode
from saleor_crm_plugin.rfm.exceptions import RfmError
from saleor_crm_plugin.rfm.models import RfmSegmentHistory
from tests.rfm.conftest import AS_OF, CHANNEL

ENGINES = ["sql", "python"]


@pytest.fixture
def store(make_customer, make_order):
    """Ten customers with 1..10 orders, spread so each lands in a different cell."""
    people = []
    for i in range(10):
        person = make_customer(f"p{i}@example.com", first_name=f"P{i}")
        for k in range(i + 1):
            make_order(person, days_ago=10 * i + k, charged=str(10 * (i + 1)), refresh=False)
        people.append(person)
    refresh_customer_stats([p.pk for p in people])
    return people


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_history_records_moves_and_the_matrix_counts_them(store, make_order, engine):
    first = services.recompute(CHANNEL, as_of=AS_OF, engine=engine)
    before = {r.customer_id: r.segment for r in services.segment_customers(CHANNEL)}
    assert first.moved_count == 0
    assert RfmSegmentHistory.objects.count() == 10

    # p0 (one old-ish order) buys a lot; p9's orders get cancelled: no longer scored
    for _ in range(12):
        make_order(store[0], days_ago=0.5, charged="500")
    for order in store[9].orders.all():
        order.status = OrderStatus.CANCELED
        order.save()
    refresh_customer_stats([store[9].pk])
    second = services.recompute(CHANNEL, as_of=AS_OF + timedelta(days=1), engine=engine)

    after = {r.customer_id: r.segment for r in services.segment_customers(CHANNEL)}
    assert store[9].pk not in after
    assert after[store[0].pk] == "champions" != before[store[0].pk]
    history = services.segment_history(store[0].pk, CHANNEL)
    assert [(h.segment, h.from_run_id, h.to_run_id) for h in history] == [
        (before[store[0].pk], first.pk, second.pk),
        ("champions", second.pk, None),
    ]
    matrix = services.movement_matrix(first, second)
    assert matrix[(before[store[9].pk], "")] == 1
    assert matrix[(before[store[0].pk], "champions")] >= 1
    assert sum(matrix.values()) == 10
    expected_moves = sum(
        1 for cid, seg in after.items() if before[cid] != seg
    )  # moved between two segments
    assert second.moved_count == expected_moves
    stayed = sum(n for (a, b), n in matrix.items() if a == b)
    assert stayed == 10 - expected_moves - 1


@pytest.mark.django_db
def test_movement_matrix_needs_runs_of_one_channel(store, make_order):
    run = services.recompute(CHANNEL, as_of=AS_OF)
    make_order(store[0], channel="Q2hhbm5lbDoy")
    other = services.recompute("Q2hhbm5lbDoy", as_of=AS_OF)
    with pytest.raises(RfmError) as info:
        services.movement_matrix(run, other)
    assert (info.value.code, info.value.field) == (RfmErrorCode.INVALID, "to_run")
    with pytest.raises(RfmError) as info:
        services.get_run(other.pk, CHANNEL)
    assert info.value.code == RfmErrorCode.RUN_NOT_FOUND


@pytest.mark.django_db
def test_segment_summary_shares_aov_and_movement(store, make_order):
    services.recompute(CHANNEL, as_of=AS_OF)
    for _ in range(12):
        make_order(store[0], days_ago=0, charged="500")
    services.recompute(CHANNEL, as_of=AS_OF)

    rows = services.segment_summary(CHANNEL)

    assert [r.segment for r in rows][:3] == ["champions", "loyal", "potential_loyalists"]
    assert sum(r.customers for r in rows) == 10
    assert sum(r.revenue_share for r in rows) == pytest.approx(Decimal(1))
    total_revenue = sum(r.revenue for r in rows)
    assert total_revenue == Decimal(sum(10 * (i + 1) * (i + 1) for i in range(10)) + 6000)
    for r in rows:
        if r.orders:
            assert r.average_order_value == (r.revenue / r.orders).quantize(Decimal("0.01"))
        else:
            assert (r.customers, r.average_order_value) == (0, None)
    moved = sum(r.moved_in for r in rows)
    assert moved == sum(r.moved_out for r in rows) >= 1
    assert services.segment_summary("no-such-channel") == []


@pytest.mark.django_db
def test_segment_customers_filters(store):
    run = services.recompute(CHANNEL, as_of=AS_OF)
    everyone = list(services.segment_customers(CHANNEL))
    assert [r.monetary for r in everyone] == sorted((r.monetary for r in everyone), reverse=True)

    top_segment = everyone[0].segment
    same = services.segment_customers(CHANNEL, services.SegmentFilter(segment=top_segment))
    assert {r.segment for r in same} == {top_segment}
    assert same.count() == sum(1 for r in everyone if r.segment == top_segment)
    f5 = services.segment_customers(CHANNEL, services.SegmentFilter(f_scores=[5]))
    assert {r.f_score for r in f5} == {5}
    rich = services.segment_customers(CHANNEL, services.SegmentFilter(min_monetary=Decimal(500)))
    assert {r.customer.email for r in rich} == {
        "p7@example.com",
        "p8@example.com",
        "p9@example.com",
    }
    recent = services.segment_customers(CHANNEL, services.SegmentFilter(max_recency_days=20))
    assert all(services.recency_days(r, run) <= 20 for r in recent)
    assert recent.count() == 3
    found = services.segment_customers(CHANNEL, services.SegmentFilter(search="p3@"))
    assert [r.customer.first_name for r in found] == ["P3"]
    changed = services.segment_customers(CHANNEL, services.SegmentFilter(changed_in_last_run=True))
    assert changed.count() == 10

    with pytest.raises(RfmError) as info:
        services.segment_customers(CHANNEL, services.SegmentFilter(segment="vips"))
    assert (info.value.code, info.value.field) == (RfmErrorCode.INVALID_SEGMENT, "segment")
    with pytest.raises(RfmError) as info:
        services.segment_customers(CHANNEL, services.SegmentFilter(r_scores=[0]))
    assert (info.value.code, info.value.field) == (RfmErrorCode.INVALID, "r_score")


@pytest.mark.django_db
def test_csv_export_for_email_tools(store, make_customer, make_order):
    hacker = make_customer("=cmd@example.com", first_name="=HYPERLINK(1)")
    make_order(hacker, days_ago=1, charged="99999")
    no_email = make_customer("")
    make_order(no_email, days_ago=1, charged="99999")
    services.recompute(CHANNEL, as_of=AS_OF)

    out = io.StringIO()
    count = services.export_segment_csv(out, CHANNEL)

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(rows) == 11  # the customer without an address is left out
    assert list(rows[0]) == list(services.CSV_COLUMNS)
    top = rows[0]
    assert (top["email"], top["first_name"]) == ("'=cmd@example.com", "'=HYPERLINK(1)")
    assert top["channel"] == "default-channel"
    p9 = next(r for r in rows if r["email"] == "p9@example.com")
    assert (p9["frequency"], p9["monetary"], p9["recency_days"]) == ("10", "1000.000", "90")
    assert p9["segment_name"] == services.get_segment_map(CHANNEL).names[p9["segment"]]

    only = io.StringIO()
    n = services.export_segment_csv(only, CHANNEL, services.SegmentFilter(segment=p9["segment"]))
    assert n == sum(1 for r in rows if r["segment"] == p9["segment"])
