"""Product attributes as item features: a product nobody bought yet still scores by them."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import override_settings

from saleor_crm_plugin.customers.models import OrderLine
from saleor_crm_plugin.recommendations import services
from saleor_crm_plugin.recommendations.data import extract_interactions
from saleor_crm_plugin.recommendations.training import fit
from tests.recommendations.builders import START, Shop, product


def attributes_like_categories(shop: Shop) -> None:
    """The shop's taste structure moves from categories to an attribute value (plus one value
    every product shares, which says nothing): categories are wiped, so whatever the model
    learns about a cold product comes from its attributes alone."""
    by_style: dict[int, list[str]] = {}
    for pid, c in shop.categories.items():
        by_style.setdefault(c, []).append(pid)
    for c, pids in by_style.items():
        OrderLine.objects.filter(product_id__in=pids).update(
            attributes=["brand:acme", f"style:s{c}"], category_id=""
        )


def _row(values: dict[int, float], width: int) -> list[float]:
    return [values.get(i, 0.0) for i in range(width)]


@pytest.mark.django_db
def test_attributes_become_normalised_item_features(orders):
    from saleor_crm_plugin.customers.models import Customer

    ada = Customer.objects.create(email="ada@example.com", saleor_user_id="U1")
    order = orders.order(
        ada,
        [(product(1), 1), (product(2), 1), (product(3), 1)],
        at=START,
        categories={product(1): 1},
    )
    order.lines.filter(product_id=product(1)).update(
        product_type_id="T1", attributes=["colour:red", "size:m"]
    )
    order.lines.filter(product_id=product(2)).update(attributes=["size:m"])

    data = extract_interactions()
    # The extraction does not order its rows, so look products up by id.
    one, two, three = (data.item_ids.index(product(n)) for n in (1, 2, 3))
    assert dict(zip(data.item_ids, data.item_attributes, strict=True)) == {
        product(1): ["colour:red", "size:m"],
        product(2): ["size:m"],
        product(3): [],
    }
    assert data.item_features(use_categories=False).shape == (3, 3)
    attrs_only = data.item_features(use_categories=False, use_attributes=True).toarray()
    assert attrs_only.shape == (3, 5)  # 3 identities + colour:red + size:m
    third = 1 / 3
    assert attrs_only[one].tolist() == pytest.approx(_row({one: third, 3: third, 4: third}, 5))
    assert attrs_only[two].tolist() == pytest.approx(_row({two: 0.5, 4: 0.5}, 5))
    assert attrs_only[three].tolist() == pytest.approx(_row({three: 1}, 5))  # unknown
    every = data.item_features(
        use_categories=True, use_product_types=True, use_attributes=True
    ).toarray()
    assert every.shape == (3, 7)  # identities, category, product type, then attributes
    assert every[one].tolist() == pytest.approx(_row({one: 0.2, 3: 0.2, 4: 0.2, 5: 0.2, 6: 0.2}, 7))
    assert np.allclose(every.sum(axis=1), 1.0)


@pytest.mark.django_db
def test_the_setting_adds_attribute_columns_to_training(shop):
    attributes_like_categories(shop)

    off = services.train_model()
    assert off.n_item_features == 90
    assert off.params["use_attributes"] is False

    with override_settings(CRM_RECS_ATTRIBUTE_FEATURES=True):
        on = services.train_model()
    assert on.n_item_features == 90 + 6 + 1  # six styles and the shared brand
    assert on.params["use_attributes"] is True


@pytest.mark.django_db
def test_a_product_without_purchases_scores_by_its_attributes(shop):
    attributes_like_categories(shop)
    data = extract_interactions()
    params = services.params_from_settings()
    matrix = data.matrix(half_life_days=params.half_life_days).tolil()
    cold_style = 2
    # The least popular product of its style, with every purchase removed: a new product.
    cold = data.item_ids.index(product(cold_style * 1000 + 14))
    matrix[:, cold] = 0
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    assert matrix[:, cold].nnz == 0

    rows = {pk: n for n, pk in enumerate(data.user_ids)}
    fans = np.array([rows[pk] for pk, fav in shop.favourite.items() if fav == cold_style])
    others = np.array([rows[pk] for pk, fav in shop.favourite.items() if fav != cold_style])

    def fan_gap_and_rank(use_attributes: bool) -> tuple[float, float]:
        features = data.item_features(use_categories=False, use_attributes=use_attributes)
        reps = fit(matrix, features, params)
        scores = reps.user_factors @ reps.item_factors.T + reps.item_biases
        gap = float(scores[fans, cold].mean() - scores[others, cold].mean())
        # share of products the cold product outscores, for the customers of its style
        rank = float((scores[fans] < scores[fans, cold][:, None]).mean())
        return gap, rank

    gap_on, rank_on = fan_gap_and_rank(True)
    gap_off, rank_off = fan_gap_and_rank(False)

    assert len(fans) > 5
    assert gap_on > 0  # the customers who buy its style score it higher than everyone else
    assert gap_on > gap_off
    assert rank_on > 0.75  # ahead of most of the catalogue for them
    assert rank_on > rank_off
