"""The ml-queue tasks and the ``crm_recs_train`` command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from saleor_crm_plugin.beat import BEAT_SCHEDULE
from saleor_crm_plugin.recommendations import services, serving
from saleor_crm_plugin.recommendations.models import ModelRun, RunStatus
from saleor_crm_plugin.tasks.recommendations import (
    retrain_recommendations_if_due_task,
    train_recommendations_task,
)
from tests.recommendations.builders import START


@pytest.mark.django_db
def test_the_task_trains_and_returns_the_run_id(shop):
    run_id = train_recommendations_task.delay(trigger="test").get()

    run = ModelRun.objects.get(pk=run_id)
    assert (run.trigger, run.status, run.is_active) == ("test", RunStatus.SUCCEEDED, True)


@pytest.mark.django_db
def test_the_task_skips_quietly_while_another_run_is_in_progress(shop):
    ModelRun.objects.create(status=RunStatus.RUNNING)

    assert train_recommendations_task.delay().get() is None
    assert ModelRun.objects.count() == 1


@pytest.mark.django_db
def test_retrain_after_enough_new_paid_orders(shop, orders):
    services.train_model()
    customer = shop.customers[0]

    with override_settings(CRM_RECS_RETRAIN_AFTER_ORDERS=2):
        orders.order(customer, [("P-new", 1)], at=START)
        assert services.orders_since_last_run() == 1
        assert retrain_recommendations_if_due_task.delay().get() is None
        orders.order(customer, [("P-new", 1)], at=START, paid=False)  # unpaid: not counted
        orders.order(customer, [("P-new", 1)], at=START)
        run_id = retrain_recommendations_if_due_task.delay().get()

    assert ModelRun.objects.get(pk=run_id).trigger == "new_orders"
    assert services.orders_since_last_run() == 0


@pytest.mark.django_db
def test_retraining_on_new_orders_can_be_switched_off(shop):
    with override_settings(CRM_RECS_RETRAIN_AFTER_ORDERS=0):
        assert not services.retrain_due()


def test_tasks_are_routed_to_the_ml_queue_and_scheduled():
    assert train_recommendations_task.queue == "ml"
    assert retrain_recommendations_if_due_task.queue == "ml"
    tasks = {entry["task"] for entry in BEAT_SCHEDULE.values()}
    assert "saleor_crm_plugin.train_recommendations" in tasks
    assert "saleor_crm_plugin.retrain_recommendations_if_due" in tasks


@pytest.mark.django_db
def test_the_command_trains_and_prints_the_metrics(shop):
    out = StringIO()

    call_command("crm_recs_train", "--epochs", "5", stdout=out)

    text = out.getvalue()
    run = ModelRun.objects.get()
    assert run.params["epochs"] == 5
    assert f"Run {run.pk}: promoted" in text
    for scorer in ("model", "lightfm", "popularity", "buy_again"):
        assert f"  {scorer} " in text


@pytest.mark.django_db
def test_switched_off_recommendations_neither_train_nor_serve(shop):
    services.train_model()

    with override_settings(CRM_RECS_ENABLED=False):
        assert train_recommendations_task.delay().get() is None
        assert serving.recommend(customer=shop.customers[0]) == []
        assert serving.similar_products(shop.categories and next(iter(shop.categories))) == []

    assert ModelRun.objects.count() == 1


@pytest.mark.django_db
def test_catalogue_sync_task_needs_a_saleor(fake_saleor):
    from saleor_crm_plugin.recommendations.models import ProductAvailability
    from saleor_crm_plugin.tasks.recommendations import sync_recommendation_catalogue_task

    assert sync_recommendation_catalogue_task.delay().get() is None  # nothing configured

    fake_saleor.respond(
        lambda q, v, h: (
            {"channels": [{"id": "Q2hhbm5lbDox", "slug": "default", "isActive": True}]}
            if "CrmRecsChannels" in q
            else {
                "products": {
                    "pageInfo": {"hasNextPage": False, "endCursor": None},
                    "edges": [{"node": {"id": "UHJvZHVjdDox", "isAvailableForPurchase": False}}],
                }
            }
        )
    )
    with override_settings(CRM_SALEOR_API_URL=fake_saleor.api_url, CRM_SALEOR_APP_TOKEN="t"):
        assert sync_recommendation_catalogue_task.delay().get() == 1

    assert ProductAvailability.objects.get().is_available is False
