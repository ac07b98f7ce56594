"""RFM over GraphQL: staff reads and edits, customers cannot see their marketing labels."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.projection import refresh_customer_stats
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.models import RfmRun, RfmSegmentMap
from tests.graphql.conftest import error_codes, make_customer, make_order, user_gid

CHANNEL_ID = to_global_id("Channel", 1)
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
STAFF = ["MANAGE_USERS"]


@pytest.fixture
def scored(db):
    people = []
    for n in range(1, 9):
        customer = make_customer(n)
        for k in range(n):
            order = make_order(
                customer, 100 * n + k, lines=1, created=AS_OF - timedelta(days=40 * (8 - n) + k)
            )
            order.total_charged = Decimal(10 * n)
            order.save()
        people.append(customer)
    refresh_customer_stats([p.pk for p in people])
    services.recompute(CHANNEL_ID, as_of=AS_OF, write_back=False)
    return people


def staff(mint, permissions=STAFF):
    return mint.thirdparty(user_gid(900), permissions)


CUSTOMER_RFM = """
query($id: ID!) { customer(id: $id) { email rfm(channel: "default-channel") {
  channelSlug recencyDays frequency monetary { amount currency } rScore fScore mScore scores
  segment segmentName lastPaidAt run { kind asOf recencyCuts frequencyCuts monetaryCuts }
} } }
"""


def test_staff_reads_a_customers_rfm(saleor, mint, gql, scored):
    best = scored[-1]
    _, body = gql(CUSTOMER_RFM, {"id": best.saleor_user_id}, token=staff(mint))
    assert "errors" not in body, body
    (rfm,) = body["data"]["customer"]["rfm"]
    assert rfm["scores"] == "R5F5M5" and rfm["segment"] == "champions"
    assert (rfm["segmentName"], rfm["frequency"], rfm["recencyDays"]) == ("Champions", 8, 0)
    assert rfm["monetary"] == {"amount": 640.0, "currency": "USD"}
    run = RfmRun.objects.get()
    assert rfm["run"]["recencyCuts"] == run.recency_cuts
    assert rfm["run"]["monetaryCuts"] == [float(c) for c in run.monetary_cuts]
    assert rfm["run"]["kind"] == "FULL"


def test_the_customer_cannot_read_their_own_segment(saleor, mint, gql, scored):
    _, body = gql("{ me { email rfm { segment } } }", token=mint(user_gid(8)))
    assert body["data"]["me"] is None or body["data"]["me"]["rfm"] is None
    assert error_codes(body) == ["PermissionDenied"]


SUMMARY = """
query { rfmSegmentSummary(channel: "default-channel") {
  run { customerCount frequencyWindowDays }
  segments { segment name customers revenue { amount } revenueShare orders
             averageOrderValue { amount } movedIn movedOut new lost }
} }
"""


def test_segment_summary(saleor, mint, gql, scored):
    _, body = gql(SUMMARY, token=staff(mint))
    summary = body["data"]["rfmSegmentSummary"]
    assert summary["run"] == {"customerCount": 8, "frequencyWindowDays": 365}
    rows = {r["segment"]: r for r in summary["segments"]}
    assert len(rows) == 10
    assert sum(r["customers"] for r in rows.values()) == 8
    assert sum(r["revenueShare"] for r in rows.values()) == pytest.approx(1.0)
    champions = rows["champions"]
    assert champions["averageOrderValue"]["amount"] == pytest.approx(
        champions["revenue"]["amount"] / champions["orders"], abs=0.01
    )
    assert rows["new"]["averageOrderValue"] is None or rows["new"]["customers"] > 0

    _, body = gql(SUMMARY, token=staff(mint, ["MANAGE_ORDERS"]))
    assert body["data"]["rfmSegmentSummary"] is None
    assert error_codes(body) == ["PermissionDenied"]


SEGMENT_CUSTOMERS = """
query($filter: CrmRfmCustomerFilterInput, $after: String) {
  rfmSegmentCustomers(channel: "default-channel", first: 2, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { scores segment monetary { amount } customer { email } } }
  }
}
"""


def test_segment_customers_connection_with_filters(saleor, mint, gql, scored):
    token = staff(mint)
    _, body = gql(SEGMENT_CUSTOMERS, {"filter": {"fScores": [4, 5]}}, token=token)
    page = body["data"]["rfmSegmentCustomers"]
    expected = services.segment_customers(CHANNEL_ID, services.SegmentFilter(f_scores=(4, 5)))
    assert page["totalCount"] == expected.count() > 2
    emails = [e["node"]["customer"]["email"] for e in page["edges"]]
    _, body = gql(
        SEGMENT_CUSTOMERS,
        {"filter": {"fScores": [4, 5]}, "after": page["pageInfo"]["endCursor"]},
        token=token,
    )
    emails += [e["node"]["customer"]["email"] for e in body["data"]["rfmSegmentCustomers"]["edges"]]
    assert emails == [r.customer.email for r in expected][: len(emails)]
    assert len(set(emails)) == len(emails)

    _, body = gql(SEGMENT_CUSTOMERS, {"filter": {"segment": "vips"}}, token=token)
    assert body["data"]["rfmSegmentCustomers"] is None
    assert "Unknown segment 'vips'" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["exception"]["field"] == "segment"


def test_segment_export_is_csv_for_email_tools(saleor, mint, gql, scored):
    query = '{ rfmSegmentExport(channel: "default-channel", filter: {segment: "champions"}) }'
    _, body = gql(query, token=staff(mint))
    rows = list(csv.DictReader(io.StringIO(body["data"]["rfmSegmentExport"])))
    assert rows and {r["segment"] for r in rows} == {"champions"}
    assert "customer8@example.com" in {r["email"] for r in rows}

    _, body = gql(query, token=mint(user_gid(8)))
    assert error_codes(body) == ["PermissionDenied"]


def test_movement_between_runs(saleor, mint, gql, scored):
    for k in range(10):
        make_order(scored[0], 9000 + k, lines=1, created=AS_OF - timedelta(hours=k + 1))
    refresh_customer_stats([scored[0].pk])
    services.recompute(CHANNEL_ID, as_of=AS_OF, write_back=False)
    query = '{ rfmSegmentMovement(channel: "default-channel") { fromSegment toSegment customers } }'
    _, body = gql(query, token=staff(mint))
    moves = body["data"]["rfmSegmentMovement"]
    assert sum(m["customers"] for m in moves) == 8
    assert any(m["fromSegment"] != m["toSegment"] for m in moves)

    bad = '{ rfmSegmentMovement(channel: "default-channel", fromRun: "999") { customers } }'
    _, body = gql(bad, token=staff(mint))
    assert body["errors"][0]["message"] == "There is no RFM run 999."
    assert body["errors"][0]["extensions"]["exception"] == {
        "code": "RUN_NOT_FOUND",
        "field": "fromRun",
    }


MAP_UPDATE = """
mutation($segments: [CrmRfmSegmentInput!]!) {
  rfmSegmentMapUpdate(channel: "default-channel", segments: $segments) {
    errors { field code message }
    segmentMap { segments { slug name cells } }
  }
}
"""


def test_segment_map_update_validates_every_cell(saleor, mint, gql, scored):
    token = staff(mint)
    segments = [
        {"slug": "best", "name": "Best", "cells": ["R4-5F1-5"]},
        {"slug": "rest", "name": "Rest", "cells": ["R1-3F1-5"]},
    ]
    _, body = gql(MAP_UPDATE, {"segments": segments}, token=token)
    result = body["data"]["rfmSegmentMapUpdate"]
    assert result["errors"] == []
    assert [s["slug"] for s in result["segmentMap"]["segments"]] == ["best", "rest"]
    assert RfmSegmentMap.objects.get().channel_id == CHANNEL_ID

    _, body = gql(MAP_UPDATE, {"segments": segments[:1]}, token=token)
    result = body["data"]["rfmSegmentMapUpdate"]
    assert result["segmentMap"] is None
    assert result["errors"] == [
        {
            "field": "segments",
            "code": "MISSING_CELL",
            "message": "Every R x F cell needs a segment; not covered: "
            + ", ".join(f"R{r}F{f}" for r in (3, 2, 1) for f in (5, 4, 3, 2, 1))
            + ".",
        }
    ]
    assert services.get_segment_map(CHANNEL_ID).names == {"best": "Best", "rest": "Rest"}

    _, body = gql(MAP_UPDATE, {"segments": segments}, token=mint(user_gid(1)))
    assert error_codes(body) == ["PermissionDenied"]


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_recompute_mutation_runs_the_task(
    saleor, mint, gql, scored, django_capture_on_commit_callbacks
):
    query = """mutation { rfmRecompute(channel: "default-channel", full: true) {
      queued errors { field code message } } }"""
    with django_capture_on_commit_callbacks(execute=True):
        _, body = gql(query, token=staff(mint))
    assert body["data"]["rfmRecompute"] == {"queued": True, "errors": []}
    assert RfmRun.objects.count() == 2

    _, body = gql(
        'mutation { rfmRecompute(channel: "nope") { queued errors { field code } } }',
        token=staff(mint),
    )
    assert body["data"]["rfmRecompute"] == {
        "queued": None,
        "errors": [{"field": "channel", "code": "CHANNEL_NOT_FOUND"}],
    }
