"""Product types as item features: a product nobody bought yet still scores by its type."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import override_settings

from saleor_crm_plugin.core.ids import to_global_id
from saleor_crm_plugin.customers.models import OrderLine
from saleor_crm_plugin.recommendations import services
from saleor_crm_plugin.recommendations.data import extract_interactions
from saleor_crm_plugin.recommendations.training import fit
from tests.recommendations.builders import START, Shop, product


def product_type(n: int) -> str:
    return to_global_id("ProductType", n)


def type_lines_like_categories(shop: Shop) -> None:
    """The shop's taste structure moves from categories to product types: categories are
    wiped, so whatever the model learns about a cold product comes from its type alone."""
    by_type: dict[int, list[str]] = {}
    for pid, c in shop.categories.items():
        by_type.setdefault(c, []).append(pid)
    for c, pids in by_type.items():
        OrderLine.objects.filter(product_id__in=pids).update(
            product_type_id=product_type(c), product_type_slug=f"type-{c}", category_id=""
        )


def _row(values: dict[int, float], width: int) -> list[float]:
    return [values.get(i, 0.0) for i in range(width)]


@pytest.mark.django_db
def test_product_types_become_normalised_item_features(orders):
    from saleor_crm_plugin.customers.models import Customer

    ada = Customer.objects.create(email="ada@example.com", saleor_user_id="U1")
    order = orders.order(
        ada,
        [(product(1), 1), (product(2), 1), (product(3), 1)],
        at=START,
        categories={product(1): 1},
    )
    order.lines.filter(product_id__in=[product(1), product(2)]).update(
        product_type_id=product_type(5)
    )

    data = extract_interactions()
    # The extraction does not order its rows, so look products up by id.
    one, two, three = (data.item_ids.index(product(n)) for n in (1, 2, 3))
    assert dict(zip(data.item_ids, data.item_product_types, strict=True)) == {
        product(1): product_type(5),
        product(2): product_type(5),
        product(3): "",
    }
    assert data.item_features(use_categories=False).shape == (3, 3)
    types_only = data.item_features(use_categories=False, use_product_types=True).toarray()
    assert types_only.shape == (3, 4)  # 3 identities + 1 product type
    assert types_only[two].tolist() == pytest.approx(_row({two: 0.5, 3: 0.5}, 4))
    assert types_only[three].tolist() == pytest.approx(_row({three: 1}, 4))  # unknown type
    both = data.item_features(use_categories=True, use_product_types=True).toarray()
    assert both.shape == (3, 5)  # identities, then the category, then the type
    assert both[one].tolist() == pytest.approx(_row({one: 1 / 3, 3: 1 / 3, 4: 1 / 3}, 5))
    assert np.allclose(both.sum(axis=1), 1.0)


@pytest.mark.django_db
def test_the_setting_adds_product_type_columns_to_training(shop):
    type_lines_like_categories(shop)

    off = services.train_model()
    assert off.n_item_features == 90
    assert off.params["use_product_types"] is False

    with override_settings(CRM_RECS_PRODUCT_TYPE_FEATURES=True):
        on = services.train_model()
    assert on.n_item_features == 90 + 6
    assert on.params["use_product_types"] is True


@pytest.mark.django_db
def test_a_product_without_purchases_scores_by_its_product_type(shop):
    type_lines_like_categories(shop)
    data = extract_interactions()
    params = services.params_from_settings()
    matrix = data.matrix(half_life_days=params.half_life_days).tolil()
    cold_type = 2
    # The least popular product of its type, with every purchase removed: a new product.
    cold = data.item_ids.index(product(cold_type * 1000 + 14))
    matrix[:, cold] = 0
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    assert matrix[:, cold].nnz == 0

    rows = {pk: n for n, pk in enumerate(data.user_ids)}
    fans = np.array([rows[pk] for pk, fav in shop.favourite.items() if fav == cold_type])
    others = np.array([rows[pk] for pk, fav in shop.favourite.items() if fav != cold_type])

    def fan_gap_and_rank(use_product_types: bool) -> tuple[float, float]:
        features = data.item_features(use_categories=False, use_product_types=use_product_types)
        reps = fit(matrix, features, params)
        scores = reps.user_factors @ reps.item_factors.T + reps.item_biases
        gap = float(scores[fans, cold].mean() - scores[others, cold].mean())
        # share of products the cold product outscores, for the customers of its type
        rank = float((scores[fans] < scores[fans, cold][:, None]).mean())
        return gap, rank

    gap_on, rank_on = fan_gap_and_rank(True)
    gap_off, rank_off = fan_gap_and_rank(False)

    assert len(fans) > 5
    assert gap_on > 0  # the customers who buy its type score it higher than everyone else
    assert gap_on > gap_off
    assert rank_on > 0.75  # ahead of most of the catalogue for them
    assert rank_on > rank_off
