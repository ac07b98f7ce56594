"""What counts as a purchase, how much it weighs, and what the holdout hides."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer, OrderStatus
from saleor_crm_plugin.recommendations.data import extract_interactions, last_order_holdout
from tests.recommendations.builders import START, product


@pytest.fixture
def ada(db):
    return Customer.objects.create(email="ada@example.com", saleor_user_id="U1")


@pytest.fixture
def bob(db):
    return Customer.objects.create(email="bob@example.com", saleor_user_id="U2")


@pytest.mark.django_db
def test_only_paid_sales_of_known_customers_count(orders, ada, bob):
    orders.order(ada, [(product(1), 2)], at=START)
    orders.order(ada, [(product(2), 1)], at=START, paid=False)
    orders.order(ada, [(product(3), 1)], at=START, status=OrderStatus.CANCELED)
    orders.order(ada, [(product(4), 1)], at=START, status=OrderStatus.DRAFT)
    orders.order(None, [(product(5), 1)], at=START)
    orders.order(bob, [(product(6), 1)], at=START)
    bob.erased_at = timezone.now()
    bob.save()

    data = extract_interactions()

    assert data.user_ids == [ada.pk]
    assert data.item_ids == [product(1)]
    assert data.quantities.tolist() == [2.0]


@pytest.mark.django_db
def test_refunded_units_are_removed_and_fully_refunded_lines_dropped(orders, ada):
    orders.order(
        ada,
        [(product(1), 5), (product(2), 2)],
        at=START,
        refunded={product(1): 2, product(2): 2},
        status=OrderStatus.PARTIALLY_RETURNED,
    )

    data = extract_interactions()

    assert data.item_ids == [product(1)]
    assert data.quantities.tolist() == [3.0]


@pytest.mark.django_db
def test_weights_grow_with_quantity_and_fade_with_age(orders, ada):
    orders.order(ada, [(product(1), 1)], at=START)
    orders.order(ada, [(product(2), 1)], at=START + timedelta(days=180))
    orders.order(ada, [(product(3), 7)], at=START + timedelta(days=180))

    data = extract_interactions()
    matrix = data.matrix(half_life_days=180).toarray()[0]
    col = {pid: n for n, pid in enumerate(data.item_ids)}

    assert matrix[col[product(2)]] == pytest.approx(np.log1p(1))
    assert matrix[col[product(1)]] == pytest.approx(np.log1p(1) / 2)  # one half-life older
    assert matrix[col[product(3)]] == pytest.approx(np.log1p(7))
    # no decay when the half-life is 0
    assert data.matrix(half_life_days=0).toarray()[0][col[product(1)]] == pytest.approx(np.log1p(1))


@pytest.mark.django_db
def test_repeat_purchases_add_up(orders, ada):
    orders.order(ada, [(product(1), 1)], at=START)
    orders.order(ada, [(product(1), 1)], at=START)

    matrix = extract_interactions().matrix(half_life_days=0)

    assert matrix.nnz == 1
    assert matrix.toarray()[0][0] == pytest.approx(2 * np.log1p(1))


@pytest.mark.django_db
def test_holdout_hides_each_customers_last_order(orders, ada, bob):
    orders.order(ada, [(product(1), 1), (product(2), 1)], at=START)
    orders.order(ada, [(product(3), 1), (product(1), 1)], at=START + timedelta(days=3))
    orders.order(bob, [(product(4), 1)], at=START + timedelta(days=9))  # only one order

    data = extract_interactions()
    holdout = last_order_holdout(data)

    col = {pid: n for n, pid in enumerate(data.item_ids)}
    row = {pk: n for n, pk in enumerate(data.user_ids)}
    assert holdout.test_users.tolist() == [row[ada.pk]]
    assert sorted(holdout.test_items[0].tolist()) == sorted([col[product(3)], col[product(1)]])
    train = data.matrix(holdout.train_mask, half_life_days=0).toarray()
    assert train[row[ada.pk]].nonzero()[0].tolist() == sorted([col[product(1)], col[product(2)]])
    assert train[row[bob.pk]].nonzero()[0].tolist() == [col[product(4)]]  # kept for training


@pytest.mark.django_db
def test_categories_become_normalised_item_features(orders, ada):
    orders.order(
        ada,
        [(product(1), 1), (product(2), 1), (product(3), 1)],
        at=START,
        categories={product(1): 1, product(2): 1},
    )

    data = extract_interactions()
    features = data.item_features(use_categories=True).toarray()

    assert features.shape == (3, 4)  # 3 identities + 1 category
    assert np.allclose(features.sum(axis=1), 1.0)
    assert features[0].tolist() == pytest.approx([0.5, 0, 0, 0.5])
    assert features[2].tolist() == pytest.approx([0, 0, 1, 0])  # no category: identity only
    assert data.item_features(use_categories=False).shape == (3, 3)
