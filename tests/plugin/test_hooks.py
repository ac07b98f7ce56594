"""Plugin-mode hooks: translate, store, return previous_value, never raise."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.from_plugin import CRMPluginHooks, translate_customer, translate_order
from saleor_crm_plugin.events.models import InboxEvent
from saleor_crm_plugin.events.types import CrmEvent, EventKind, EventSource
from tests.plugin.probe import ProbeObject, probe_calls

HOOKS = [
    "order_created",
    "order_confirmed",
    "order_paid",
    "order_fully_paid",
    "order_refunded",
    "order_fully_refunded",
    "order_cancelled",
    "order_fulfilled",
    "order_updated",
    "customer_created",
    "customer_updated",
    "customer_deleted",
]
SENTINEL = object()


def probe_order():
    return next(obj for hook, obj, _ in probe_calls() if hook == "order_created")


def probe_user():
    return next(obj for hook, obj, _ in probe_calls() if hook == "customer_created")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "hook, obj, kwargs", probe_calls(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_recorded_calls_return_previous_value_and_store_an_event(hook, obj, kwargs):
    result = getattr(CRMPluginHooks(), hook)(obj, SENTINEL, **kwargs)

    assert result is SENTINEL
    row = InboxEvent.objects.get()
    assert (row.kind, row.source) == (hook, "plugin")


@pytest.mark.django_db
@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_accepts_extra_arguments(hook):
    obj = probe_user() if hook.startswith("customer") else probe_order()

    result = getattr(CRMPluginHooks(), hook)(
        obj, SENTINEL, "extra", webhooks={1, 2}, later_kwarg=True
    )

    assert result is SENTINEL
    assert InboxEvent.objects.filter(kind=hook).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_never_raise_on_broken_objects(hook):
    class Broken:
        def __getattr__(self, name):
            raise RuntimeError(f"database gone while reading {name}")

    result = getattr(CRMPluginHooks(), hook)(Broken(), SENTINEL)

    assert result is SENTINEL
    assert InboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_hooks_never_raise_when_storing_fails(monkeypatch):
    def fail(event, **kwargs):
        raise RuntimeError("inbox table locked")

    monkeypatch.setattr(inbox, "store_event", fail)

    assert CRMPluginHooks().order_fully_paid(probe_order(), SENTINEL, webhooks=None) is SENTINEL


@pytest.mark.django_db
def test_repeated_hook_for_the_same_state_is_stored_once():
    hooks = CRMPluginHooks()
    order = probe_order()

    for _ in range(3):
        hooks.order_fully_paid(order, None, webhooks=set())

    assert InboxEvent.objects.filter(kind="order_fully_paid").count() == 1


def test_order_translation_uses_saleor_global_ids():
    order = probe_order()

    event = translate_order(
        EventKind.ORDER_CREATED, order, issued_at=datetime(2026, 11, 23, tzinfo=UTC)
    )

    snapshot = event.order
    assert event.source == EventSource.PLUGIN
    assert snapshot.saleor_order_id == to_global_id("Order", "bc243045-b58d-492c-be62-6d0adbee34b0")
    assert snapshot.user_id == to_global_id("User", 51) == "VXNlcjo1MQ=="
    assert snapshot.channel_id == to_global_id("Channel", 1) == "Q2hhbm5lbDox"
    assert (snapshot.number, snapshot.status, snapshot.currency) == ("27", "UNFULFILLED", "USD")
    assert snapshot.total_gross == Decimal("20.000")
    assert snapshot.payment.total_charged == Decimal("0.000")
    assert snapshot.payment.charge_status == "NONE"
    assert snapshot.lines is None  # the recorded object carries no lines relation
    assert snapshot.channel_slug is None
    assert CrmEvent.from_dict(event.to_dict()) == event


def test_customer_translation():
    event = translate_customer(EventKind.CUSTOMER_CREATED, probe_user())

    customer = event.customer
    assert customer.saleor_user_id == "VXNlcjo1MQ=="
    assert (customer.email, customer.first_name, customer.last_name) == (
        "grace.hopper2@example.com",
        "Grace",
        "Hopper",
    )
    assert customer.updated_at == datetime(2026, 11, 23, 7, 51, 29, 665158, tzinfo=UTC)


@pytest.mark.django_db
def test_plugin_events_build_the_same_projection():
    hooks = CRMPluginHooks()
    for hook, obj, kwargs in probe_calls():
        getattr(hooks, hook)(obj, None, **kwargs)

    inbox.process_pending()

    grace = Customer.objects.get(saleor_user_id="VXNlcjo1MQ==")
    assert grace.email == "grace.hopper2@example.com"
    assert grace.order_count == 2
    orders = {o.number: o for o in Order.objects.filter(customer=grace)}
    assert (orders["27"].charge_status, orders["27"].total_charged) == ("FULL", Decimal("20.000"))
    assert (orders["28"].charge_status, orders["28"].total_charged) == ("FULL", Decimal("50.000"))
    assert orders["27"].paid_at is not None
    assert (
        Customer.objects.get(saleor_user_id=to_global_id("User", 52)).email
        == "self.signup2@example.com"
    )
    assert grace.channel_stats.get().total_spent == Decimal("70.000")


def test_probe_objects_have_only_recorded_attributes():
    order = probe_order()
    assert not hasattr(order, "lines")
    assert not hasattr(order, "channel")
    assert isinstance(order.updated_at, datetime)
    assert isinstance(
        ProbeObject({"type": "x", "total_gross_amount": "1.5"}).total_gross_amount, Decimal
    )
