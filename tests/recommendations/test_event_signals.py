"""Storefront events (views, add-to-carts) as an optional, weaker training signal."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Max
from django.test import override_settings
from django.utils import timezone

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.recommendations import services
from saleor_crm_plugin.recommendations.data import (
    ONE_PURCHASE,
    extract_interactions,
    last_order_holdout,
)
from saleor_crm_plugin.recommendations.models import ModelArtefact, RunDecision, StorefrontEvent
from tests.recommendations.builders import START, OrderFactory, product

WEIGHTS = {"product_viewed": 0.1, "added_to_cart": 0.3}


def event(customer, pid, kind="product_viewed", *, at, anonymous_id=""):  # type: ignore[no-untyped-def]
    return StorefrontEvent.objects.create(
        kind=kind, customer=customer, product_id=pid, occurred_at=at, anonymous_id=anonymous_id
    )


@pytest.fixture
def ada(db):
    return Customer.objects.create(email="ada@example.com", saleor_user_id="U1")


@pytest.fixture
def bob(db):
    return Customer.objects.create(email="bob@example.com", saleor_user_id="U2")


def same_matrix(a, b) -> bool:  # type: ignore[no-untyped-def]
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
        and a.dtype == b.dtype
    )


def test_event_weights_are_off_by_default_and_validated():
    assert crm_settings.RECS_EVENT_WEIGHTS == {}
    assert services.params_from_settings().event_weights == ()
    with override_settings(CRM_RECS_EVENT_WEIGHTS="product_viewed=0.1, added_to_cart=0.3"):
        assert crm_settings.RECS_EVENT_WEIGHTS == WEIGHTS
        assert services.params_from_settings().as_dict()["event_weights"] == WEIGHTS
    for bad in ({"recommendation_clicked": 0.1}, {"product_viewed": 2}, {"product_viewed": "x"}):
        with override_settings(CRM_RECS_EVENT_WEIGHTS=bad), pytest.raises(ImproperlyConfigured):
            crm_settings.RECS_EVENT_WEIGHTS  # noqa: B018


@pytest.mark.django_db
def test_with_weights_off_the_training_data_is_unchanged(shop):
    customer = shop.customers[0]
    for n in range(5):
        event(customer, product(1000 + n), at=START + timedelta(days=n))
        event(customer, product(2000 + n), "added_to_cart", at=START + timedelta(days=n))
    baseline = extract_interactions()

    for weights in ({}, None, {"product_viewed": 0.0, "added_to_cart": 0}):
        data = extract_interactions(event_weights=weights)
        assert data.events is None and data.n_events == 0
        for mask in (None, last_order_holdout(data).train_mask):
            expected = baseline.matrix(mask, half_life_days=180)
            assert same_matrix(data.training_matrix(mask, half_life_days=180), expected)


@pytest.mark.django_db
def test_events_add_interactions_with_their_weights(orders, ada, bob):
    until = START + timedelta(days=180)
    orders.order(ada, [(product(1), 1)], at=START)
    orders.order(bob, [(product(2), 1), (product(3), 1), (product(4), 1)], at=until)
    event(ada, product(1), at=until)  # on a product she bought: adds to it
    event(ada, product(2), "added_to_cart", at=until)
    event(ada, product(3), at=START)  # one half-life old
    for n in range(30):  # fifty page views are not fifty purchases
        event(ada, product(4), at=until - timedelta(minutes=n))
    event(ada, product(99), at=until)  # a product nobody bought: never enters the model
    event(None, product(2), at=until, anonymous_id="anon-1")  # not linked to a customer
    event(ada, product(2), "recommendation_clicked", at=until)  # not a training kind
    carol = Customer.objects.create(email="carol@example.com", saleor_user_id="U3")
    event(carol, product(2), at=until)  # never bought: no row of her own
    erased = Customer.objects.create(email="x@example.com", erased_at=timezone.now())
    event(erased, product(2), at=until)

    data = extract_interactions(event_weights=WEIGHTS)
    matrix = data.training_matrix(half_life_days=180).toarray()
    purchases = data.matrix(half_life_days=180).toarray()
    row = {pk: n for n, pk in enumerate(data.user_ids)}
    col = {pid: n for n, pid in enumerate(data.item_ids)}
    ada_row = matrix[row[ada.pk]]

    assert data.n_events == 33
    assert data.user_ids == [ada.pk, bob.pk] and product(99) not in col
    assert ada_row[col[product(1)]] == pytest.approx(ONE_PURCHASE / 2 + 0.1 * ONE_PURCHASE)
    assert ada_row[col[product(2)]] == pytest.approx(0.3 * ONE_PURCHASE)
    assert ada_row[col[product(3)]] == pytest.approx(0.1 * ONE_PURCHASE / 2)
    assert ada_row[col[product(4)]] == pytest.approx(ONE_PURCHASE)  # capped at one purchase
    assert np.array_equal(matrix[row[bob.pk]], purchases[row[bob.pk]])
    # The purchase matrix (history, baselines) ignores events.
    assert purchases[row[ada.pk]].nonzero()[0].tolist() == [col[product(1)]]


@pytest.mark.django_db
def test_the_holdout_fit_only_sees_events_before_the_customers_previous_order(orders, ada, bob):
    orders.order(ada, [(product(1), 1)], at=START)
    orders.order(ada, [(product(2), 1)], at=START + timedelta(days=10))  # held out
    orders.order(bob, [(product(2), 1)], at=START + timedelta(days=5))  # one order: no test
    event(ada, product(2), at=START - timedelta(days=1))  # before her previous order: kept
    event(ada, product(2), "added_to_cart", at=START + timedelta(days=9))  # gives it away
    event(bob, product(1), at=START + timedelta(days=30))

    data = extract_interactions(event_weights=WEIGHTS)
    holdout = last_order_holdout(data)
    mask = data.event_mask(holdout)
    train = data.training_matrix(holdout.train_mask, half_life_days=0, event_mask=mask).toarray()

    kept = sorted(
        (data.user_ids[u], data.item_ids[i], round(float(w), 2))
        for u, i, w in zip(
            data.events.users[mask], data.events.items[mask], data.events.weights[mask], strict=True
        )
    )
    assert kept == [(ada.pk, product(2), 0.1), (bob.pk, product(1), 0.1)]
    row = {pk: n for n, pk in enumerate(data.user_ids)}
    col = {pid: n for n, pid in enumerate(data.item_ids)}
    assert train[row[ada.pk], col[product(2)]] == pytest.approx(0.1 * ONE_PURCHASE)
    # The full refit (serving) uses every event.
    full = data.training_matrix(half_life_days=0).toarray()
    assert full[row[ada.pk], col[product(2)]] == pytest.approx(ONE_PURCHASE + 0.4 * ONE_PURCHASE)


def build_browsing_shop(factory: OrderFactory, *, seed: int = 3) -> None:
    """Purchases are sparse and noisy (two or three one-line orders, the first ones half at
    random), but customers browse their favourite category before buying: only the views
    tell the model what a customer's next order will be."""
    rng = random.Random(seed)
    n_categories, per_category = 6, 15
    weights = [1.0 / (i + 1) ** 0.7 for i in range(per_category)]
    by_category = {
        c: [product(c * 1000 + i) for i in range(per_category)] for c in range(n_categories)
    }
    everything = [p for pids in by_category.values() for p in pids]
    customers = Customer.objects.bulk_create(
        [Customer(email=f"browser{n}@example.com", saleor_user_id=f"B{n}") for n in range(160)]
    )
    views = []
    for customer in customers:
        favourite = by_category[rng.randrange(n_categories)]
        at = START + timedelta(days=rng.randint(0, 20))
        for _ in range(8):
            views.append(
                StorefrontEvent(
                    kind="product_viewed",
                    customer=customer,
                    product_id=rng.choices(favourite, weights=weights)[0],
                    occurred_at=at - timedelta(hours=rng.randint(1, 200)),
                )
            )
        bought: set[str] = set()
        n_orders = rng.randint(2, 3)
        for n in range(n_orders):
            last = n == n_orders - 1
            if last or rng.random() < 0.4:
                pool = [p for p in favourite if p not in bought]
                pid = rng.choices(pool, weights=[weights[favourite.index(p)] for p in pool])[0]
            else:
                pid = rng.choice(everything)
            bought.add(pid)
            factory.order(customer, [(pid, 1)], at=at)
            at += timedelta(days=rng.randint(5, 30))
    StorefrontEvent.objects.bulk_create(views)


@pytest.mark.django_db
def test_views_lift_the_model_when_purchases_are_sparse(orders):
    build_browsing_shop(orders)
    with_events = services.params_from_settings(event_weights=tuple(WEIGHTS.items()))
    without = services.params_from_settings()

    plain = services.evaluate(extract_interactions(), without, max_users=1000)
    data = extract_interactions(event_weights=WEIGHTS)
    browsing = services.evaluate(data, with_events, max_users=1000)

    assert 1200 < data.n_events <= 160 * 8  # views of products nobody bought are dropped
    # Same holdout, same baselines: the comparison is fair.
    assert browsing.n_test_users == plain.n_test_users == 160
    assert browsing.metrics["popularity"] == plain.metrics["popularity"]
    assert browsing.metrics["buy_again"] == plain.metrics["buy_again"]
    ndcg_with, ndcg_without = browsing.metrics["model"]["ndcg"], plain.metrics["model"]["ndcg"]
    assert ndcg_with > 2 * ndcg_without  # 0.234 vs 0.068 at seed 3
    assert ndcg_with > 2 * browsing.best_baseline[1]  # popularity 0.074


@pytest.mark.django_db
def test_a_run_with_events_records_them_and_serves_purchases_as_history(shop):
    customer = shop.customers[0]
    until = Order.objects.aggregate(Max("paid_at"))["paid_at__max"]
    for n in range(6):
        event(customer, product(2000 + n), at=until - timedelta(days=n))

    with override_settings(CRM_RECS_EVENT_WEIGHTS=WEIGHTS):
        run = services.train_model()

    assert run.decision == RunDecision.PROMOTED
    assert run.params["event_weights"] == WEIGHTS
    assert run.n_events == 6 and run.n_interactions == extract_interactions().n_purchases
    artefact = ModelArtefact.objects.get(run=run)
    history = np.frombuffer(bytes(artefact.history_data), dtype=np.float32)
    expected = extract_interactions().matrix(half_life_days=run.params["half_life_days"])
    assert np.array_equal(history, expected.data)
