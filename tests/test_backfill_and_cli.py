"""``saleor-crm backfill`` and ``replay-inbox`` against a fake Saleor answering from captures."""

import copy
import io
import os

import pytest
from django.core.management import CommandError, call_command

from saleor_crm_plugin.cli import main
from saleor_crm_plugin.customers.models import Customer, Order, OrderLine
from saleor_crm_plugin.events.models import BackfillProgress, InboxEvent, InboxStatus
from tests.captures import load_capture

ADA = "VXNlcjo0Ng=="
# The captures predate ``productType`` in our fragment; Saleor's schema makes it non-null, so
# the fake Saleor needs one on every product (added to copies, the captures stay untouched).
PRODUCT_TYPE = {"id": "UHJvZHVjdFR5cGU6MQ==", "slug": "default-type"}
# Likewise ``attributes`` (non-null list in Saleor's schema).
PRODUCT_ATTRIBUTES = [
    {"attribute": {"slug": "size"}, "values": [{"slug": "m"}]},
    {"attribute": {"slug": "colour"}, "values": [{"slug": "red"}, {"slug": "blue"}]},
]


def with_product_types(order):
    order = copy.deepcopy(order)
    for line in order.get("lines") or []:
        product = (line.get("variant") or {}).get("product")
        if product is not None:
            product["productType"] = dict(PRODUCT_TYPE)
            product["attributes"] = copy.deepcopy(PRODUCT_ATTRIBUTES)
    return order


def captured_orders():
    """The latest captured state of each order, completed with lists the same order showed in
    its other captured payloads (transactions from FULLY_PAID, fulfillments from FULFILLED;
    orders 22 and 23 were never fulfilled and 23 never charged)."""
    fulfilled = load_capture("ORDER_FULFILLED", "subscription").body["order"]
    paid = load_capture("ORDER_FULLY_PAID", "subscription").body["order"]
    order_21 = {
        **fulfilled,
        "transactions": paid["transactions"],
        "grantedRefunds": paid["grantedRefunds"],
    }
    order_22 = {
        **load_capture("ORDER_FULLY_REFUNDED", "subscription").body["order"],
        "fulfillments": [],
    }
    cancelled = load_capture("ORDER_CANCELLED", "subscription").body["order"]
    order_23 = {**cancelled, "transactions": [], "grantedRefunds": [], "fulfillments": []}
    return [with_product_types(o) for o in (order_21, order_22, order_23)]


def captured_customers():
    return [load_capture("CUSTOMER_UPDATED", "subscription").body["user"]]


def paged(resource, nodes, after, page_size):
    start = int(after[1:]) if after else 0
    chunk = nodes[start : start + page_size]
    end = start + len(chunk)
    return {
        resource: {
            "totalCount": len(nodes),
            "pageInfo": {
                "hasNextPage": end < len(nodes),
                "endCursor": f"c{end}" if chunk else None,
            },
            "edges": [{"node": n} for n in chunk],
        }
    }


@pytest.fixture
def saleor_with_history(fake_saleor):
    def root(query, variables, headers):
        if "CrmBackfillCustomers" in query:
            return paged(
                "customers", captured_customers(), variables.get("after"), variables["first"]
            )
        return paged("orders", captured_orders(), variables.get("after"), variables["first"])

    fake_saleor.respond(root)
    return fake_saleor


@pytest.mark.django_db
def test_backfill_imports_customers_and_orders(saleor_with_history):
    out = io.StringIO()

    call_command(
        "crm_backfill",
        saleor_url=saleor_with_history.api_url,
        token="app-token",
        sync=True,
        no_progress=True,
        page_size=2,
        stdout=out,
    )

    assert "customers: fetched 1, stored 1 new snapshots, Saleor total 1" in out.getvalue()
    assert "orders: fetched 3, stored 3 new snapshots, Saleor total 3" in out.getvalue()
    ada = Customer.objects.get(saleor_user_id=ADA)
    assert ada.first_name == "Augusta Ada"
    assert ada.order_count == 2
    statuses = dict(Order.objects.values_list("number", "status"))
    assert statuses == {"21": "FULFILLED", "22": "UNFULFILLED", "23": "CANCELED"}
    types = set(OrderLine.objects.values_list("product_type_id", "product_type_slug"))
    assert types == {(PRODUCT_TYPE["id"], PRODUCT_TYPE["slug"])}
    attributes = {tuple(a) for a in OrderLine.objects.values_list("attributes", flat=True)}
    assert attributes == {("colour:blue", "colour:red", "size:m")}
    assert set(InboxEvent.objects.values_list("source", "status")) == {("backfill", "done")}
    requests = [r for r in saleor_with_history.requests if r["method"] == "POST"]
    assert all(r["headers"]["Authorization"] == "Bearer app-token" for r in requests)
    assert [r["body"]["variables"]["after"] for r in requests] == [None, None, "c2"]


@pytest.mark.django_db
def test_rerun_stores_nothing_new(saleor_with_history):
    for _ in range(2):
        call_command(
            "crm_backfill",
            saleor_url=saleor_with_history.api_url,
            token="t",
            sync=True,
            no_progress=True,
            stdout=io.StringIO(),
        )
    out = io.StringIO()

    call_command(
        "crm_backfill",
        saleor_url=saleor_with_history.api_url,
        token="t",
        sync=True,
        no_progress=True,
        stdout=out,
    )

    assert "orders: fetched 3, stored 0 new snapshots" in out.getvalue()
    assert InboxEvent.objects.count() == 4


@pytest.mark.django_db
def test_interrupted_backfill_resumes_from_the_last_page(saleor_with_history):
    calls = []
    original = saleor_with_history.root

    def flaky(query, variables, headers):
        calls.append(variables.get("after"))
        if (
            "CrmBackfillOrders" in query
            and variables.get("after") == "c1"
            and calls.count("c1") == 1
        ):
            return (503, {"error": "upstream timeout"})
        return original(query, variables, headers)

    saleor_with_history.respond(flaky)
    with pytest.raises(CommandError, match="HTTP 503"):
        call_command(
            "crm_backfill",
            saleor_url=saleor_with_history.api_url,
            token="t",
            resource=["orders"],
            page_size=1,
            sync=True,
            no_progress=True,
            stdout=io.StringIO(),
        )
    progress = BackfillProgress.objects.get(resource="orders")
    assert (progress.cursor, progress.processed, progress.finished_at) == ("c1", 1, None)

    out = io.StringIO()
    call_command(
        "crm_backfill",
        saleor_url=saleor_with_history.api_url,
        token="t",
        resource=["orders"],
        page_size=1,
        sync=True,
        no_progress=True,
        stdout=out,
    )

    assert (
        "orders: fetched 2, stored 2 new snapshots, Saleor total 3 (resumed from saved progress)"
        in out.getvalue()
    )
    assert Order.objects.count() == 3
    assert BackfillProgress.objects.get(resource="orders").finished_at is not None


@pytest.mark.django_db
def test_backfill_rejects_bad_arguments(saleor_with_history):
    with pytest.raises(CommandError, match="between 1 and 100"):
        call_command(
            "crm_backfill",
            saleor_url=saleor_with_history.api_url,
            token="t",
            page_size=500,
            no_progress=True,
        )
    with pytest.raises(CommandError, match="Not a Saleor API URL"):
        call_command("crm_backfill", saleor_url="shop.example.com", token="t", no_progress=True)


@pytest.mark.django_db
def test_replay_inbox_retries_failed_events():
    from saleor_crm_plugin.events import inbox
    from tests.events.test_inbox import event_of

    row = inbox.store_event(event_of("ORDER_CREATED"), kick=False)
    InboxEvent.objects.filter(pk=row.pk).update(status=InboxStatus.FAILED, attempts=5)
    out = io.StringIO()

    call_command("crm_replay_inbox", failed=True, sync=True, stdout=out)

    assert "Processed 1 events (1 failed ones retried); 0 failed, 0 waiting" in out.getvalue()
    assert Order.objects.count() == 1


def test_cli_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("serve", "worker", "migrate", "demo", "replay-inbox", "backfill"):
        assert f"  {command} " in text


def test_cli_unknown_command(capsys):
    assert main(["no-such-thing"]) == 2
    assert "unknown command 'no-such-thing'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "skipped"),
    [([], ["--without-mingle", "--without-gossip"]), (["--mingle"], [])],
)
def test_worker_starts_without_waiting_for_peers_or_running_checks(monkeypatch, extra, skipped):
    from saleor_crm_plugin.app.celery import app

    started = []
    monkeypatch.setattr(app, "worker_main", started.append)
    monkeypatch.setenv("CELERY_SKIP_CHECKS", "")  # restored after the test, whatever happens
    monkeypatch.delenv("CELERY_SKIP_CHECKS")

    assert main(["worker", "--queues", "ingest", "--concurrency", "2", *extra]) == 0

    assert started == [["worker", "-Q", "ingest", "-l", "info", *skipped, "-c", "2"]]
    assert os.environ["CELERY_SKIP_CHECKS"] == "1"  # Celery's fix-up discards their results
