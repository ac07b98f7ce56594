import io
import json

import pytest

from saleor_crm_plugin.app.subscriptions import all_subscriptions
from saleor_crm_plugin.customers.models import Order
from saleor_crm_plugin.demo.events import deliveries, read_rows
from saleor_crm_plugin.demo.runner import run_demo
from saleor_crm_plugin.events.models import InboxEvent
from saleor_crm_plugin.events.types import EventKind
from tests.contract.test_saleor_documents import _field_paths


def _paths(value, prefix=""):
    paths = set()
    if isinstance(value, dict):
        for key, child in value.items():
            paths.add(f"{prefix}.{key}")
            paths |= _paths(child, f"{prefix}.{key}")
    elif isinstance(value, list):
        for child in value:
            paths |= _paths(child, prefix)
    return paths


def test_demo_bodies_have_exactly_the_shape_our_manifest_asks_for():
    from graphql import parse

    items = list(deliveries(read_rows()))
    kinds = {d.event for d in items}
    assert kinds == {
        "customer_created",
        "order_fully_paid",
        "order_fulfilled",
        "order_refunded",
        "order_fully_refunded",
    }
    for kind in kinds:
        body = json.loads(next(d.body for d in items if d.event == kind))
        query_paths = {
            p.removeprefix(".event")
            for p in _field_paths(parse(all_subscriptions()[EventKind(kind)]))
        }
        body_paths = _paths(body)
        assert body_paths <= query_paths, body_paths - query_paths
        # and every field the query selects on the order or user is there (values may be null)
        top = {
            p.split(".")[2]
            for p in query_paths
            if p.count(".") >= 2 and p.split(".")[1] in {"order", "user"}
        }
        obj = body.get("order") or body.get("user")
        assert set(obj) == top


def test_demo_history_is_consistent():
    rows = read_rows()
    items = list(deliveries(rows))

    assert len({r.customer_id for r in rows}) == 240
    assert [d.at for d in items] == sorted(d.at for d in items)
    refunds = [
        json.loads(d.body) for d in items if d.event in {"order_refunded", "order_fully_refunded"}
    ]
    for body in refunds:
        order = body["order"]
        assert order["totalRefunded"]["amount"] > 0
        assert (
            round(order["totalCharged"]["amount"] + order["totalRefunded"]["amount"], 2)
            == order["total"]["gross"]["amount"]
        )


@pytest.mark.django_db(transaction=True)
def test_demo_runs_end_to_end_through_http():
    out = io.StringIO()

    run_demo(out, limit=60)

    text = out.getvalue()
    assert "Replaying 60 Saleor webhook deliveries" in text
    assert "responses:             {'200 accepted': 60}" in text
    assert "forged signature:      HTTP 401, nothing stored" in text
    assert "re-sent -> {'duplicate': 3}" in text
    assert InboxEvent.objects.filter(status="done").count() == 60
    assert Order.objects.count() > 10
    assert "Top customers by lifetime spend" in text


@pytest.mark.django_db(transaction=True)
def test_the_demos_forged_delivery_is_refused_whatever_the_payload():
    """The tamper must change bytes of any delivery, not only of those with a quantity of 1."""
    from saleor_crm_plugin.demo.runner import DemoSigner, LocalApp, deliver, register_demo_instance

    signer = DemoSigner.generate()
    register_demo_instance(signer)
    items = list(deliveries(read_rows()))
    picks = [d for d in items if b'"quantity": 1,' not in d.body][:3] + items[:2]
    with LocalApp() as app:
        for delivery in picks:
            status, _, _ = deliver(app, signer, delivery, tamper=True)
            assert status == 401
    assert not InboxEvent.objects.exists()
