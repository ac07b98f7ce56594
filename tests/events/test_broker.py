"""Delivery through a real Redis broker and a real Celery worker (in a thread)."""

import os
import time
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.customers.projection import apply_event
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from tests.captures import all_captures
from tests.state import projection_state

REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CAPTURES = all_captures()

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def make_app(broker_url: str) -> Celery:
    import saleor_crm_plugin.tasks  # noqa: F401  (registers the shared tasks before finalize)

    app = Celery("crm-broker-test", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_always_eager=False,
        task_ignore_result=True,
        task_default_queue="crm-broker-test",
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=False,
        broker_connection_max_retries=0,
        task_publish_retry_policy={"max_retries": 0},
        broker_transport_options={"socket_connect_timeout": 0.5, "socket_timeout": 1},
    )
    app.finalize()
    return app


@pytest.fixture
def broker_app() -> Iterator[Celery]:
    from celery import _state

    previous = _state.get_current_app()
    app = make_app(REDIS_URL)
    with app.connection_for_write() as connection:
        connection.default_channel.client.flushdb()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()


def wait_until_processed(timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not InboxEvent.objects.filter(status=InboxStatus.PENDING).exists():
            return
        time.sleep(0.05)
    raise AssertionError("the worker did not drain the inbox")


def expected_state():
    for capture in CAPTURES:
        apply_event(translate_webhook(capture.event_header, capture.raw_body, capture.api_url))
    state = projection_state()
    Order.objects.all().delete()
    Customer.objects.all().delete()
    return state


def test_worker_processes_deliveries_from_the_broker(broker_app, saleor_instance, deliver):
    expected = expected_state()

    with start_worker(broker_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        for capture in CAPTURES:
            assert deliver(capture).status_code == 200
        wait_until_processed()

    assert InboxEvent.objects.filter(status=InboxStatus.DONE).count() == len(CAPTURES)
    assert projection_state() == expected


def test_broker_down_loses_nothing_and_the_sweep_recovers(broker_app, saleor_instance, deliver):
    from celery import _state

    expected = expected_state()
    down = make_app("redis://127.0.0.1:1/0")  # nothing listens there
    down.set_current()
    started = time.monotonic()
    responses = [deliver(c).status_code for c in CAPTURES]
    elapsed = time.monotonic() - started
    assert responses == [200] * len(CAPTURES)
    assert InboxEvent.objects.filter(status=InboxStatus.PENDING).count() == len(CAPTURES)
    assert elapsed < 30  # the outage does not hang Saleor's delivery

    broker_app.set_current()
    assert _state.get_current_app() is broker_app
    with start_worker(broker_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert inbox.sweep(older_than_seconds=0) == len(CAPTURES)
        wait_until_processed()

    assert projection_state() == expected
