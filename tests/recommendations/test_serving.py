"""Serving: personal lists, fold-in for new customers, anonymous fallbacks, filters, boosts,
similar items and bought-together."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.test import override_settings

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.recommendations import services, serving
from saleor_crm_plugin.recommendations.error_codes import RecommendationErrorCode
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.recommendations.models import (
    ModelRun,
    PrecomputedRecommendation,
    ProductAssociation,
    ProductAvailability,
    ProductRule,
)
from saleor_crm_plugin.recommendations.serving import Reason
from tests.recommendations.builders import CHANNEL, OTHER_CHANNEL, START, product


@pytest.fixture
def trained(shop):
    run = services.train_model()
    assert run.is_active
    return run


def favourite_share(shop, customer, recs):
    favourite = shop.favourite[customer.pk]
    return sum(shop.categories[r.product_id] == favourite for r in recs) / len(recs)


@pytest.mark.django_db
def test_personal_recommendations_follow_the_customers_taste(shop, trained):
    shares = [
        favourite_share(shop, c, serving.recommend(customer=c, channel_id=CHANNEL, first=10))
        for c in shop.customers[:30]
    ]

    # 6 categories: chance is 1/6; the model should put the favourite category on top
    assert sum(shares) / len(shares) > 0.6


@pytest.mark.django_db
def test_personal_list_can_come_from_the_precomputed_table(shop, trained):
    customer = shop.customers[0]
    row = PrecomputedRecommendation.objects.get(run=trained, customer=customer)
    row.product_ids = list(reversed(row.product_ids))  # tell the two sources apart
    row.save()

    with override_settings(CRM_RECS_SERVE_PRECOMPUTED=True):
        recs = serving.recommend(customer=customer, channel_id=CHANNEL, first=5)
    in_memory = serving.recommend(customer=customer, channel_id=CHANNEL, first=5)

    assert [r.product_id for r in recs] == row.product_ids[:5]
    assert [r.product_id for r in in_memory] != row.product_ids[:5]
    assert all(r.run_id == trained.pk for r in recs)
    assert all(r.reason in (Reason.PERSONAL, Reason.BUY_AGAIN) for r in recs)


@pytest.mark.django_db
def test_on_the_fly_scoring_matches_the_precomputed_list(shop, trained):
    customer = shop.customers[1]
    with override_settings(CRM_RECS_SERVE_PRECOMPUTED=True):
        precomputed = [r.product_id for r in serving.recommend(customer=customer, first=10)]

    on_the_fly = [r.product_id for r in serving.recommend(customer=customer, first=10)]

    assert on_the_fly == precomputed


@pytest.mark.django_db
def test_a_customer_newer_than_the_model_is_folded_in_from_their_orders(shop, trained, orders):
    newcomer = Customer.objects.create(email="new@example.com", saleor_user_id="NEW")
    # bought three products of category 2 after the model was trained
    orders.order(
        newcomer,
        [(product(2000), 1), (product(2001), 1), (product(2002), 1)],
        at=START + timedelta(days=400),
    )

    recs = serving.recommend(customer=newcomer, channel_id=CHANNEL, first=10)

    assert len(recs) == 10
    assert recs[0].reason in (Reason.PERSONAL, Reason.BUY_AGAIN)
    categories = Counter(shop.categories[r.product_id] for r in recs)
    assert categories.most_common(1)[0][0] == 2


@pytest.mark.django_db
def test_anonymous_and_unknown_customers_get_popular_products(shop, trained):
    stranger = Customer.objects.create(email="stranger@example.com")

    anonymous = serving.recommend(customer=None, channel_id=CHANNEL, first=5)
    unknown = serving.recommend(customer=stranger, channel_id=CHANNEL, first=5)

    assert [r.reason for r in anonymous] == [Reason.POPULAR] * 5
    assert [r.product_id for r in anonymous] == [r.product_id for r in unknown]
    scores = [r.score for r in anonymous]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.django_db
def test_popular_falls_back_to_all_channels_for_an_unseen_channel(shop, trained):
    here = serving.popular(channel_id=CHANNEL, first=5)
    elsewhere = serving.popular(channel_id=OTHER_CHANNEL, first=5)

    assert [r.product_id for r in elsewhere] == [r.product_id for r in here]


@pytest.mark.django_db
def test_blocked_and_unavailable_products_are_never_served(shop, trained):
    customer = shop.customers[2]
    first, second = (r.product_id for r in serving.recommend(customer=customer, first=2))
    ProductRule.objects.create(product_id=first, blocked=True)
    ProductAvailability.objects.create(product_id=second, channel_id=CHANNEL, is_available=False)

    in_channel = [r.product_id for r in serving.recommend(customer=customer, channel_id=CHANNEL)]
    elsewhere = [
        r.product_id for r in serving.recommend(customer=customer, channel_id=OTHER_CHANNEL)
    ]
    anonymous = [r.product_id for r in serving.popular(channel_id=CHANNEL, first=100)]

    assert first not in in_channel and second not in in_channel
    assert first not in elsewhere and second in elsewhere  # unavailable only in CHANNEL
    assert first not in anonymous and second not in anonymous
    assert len(in_channel) == 10


@pytest.mark.django_db
def test_boost_moves_a_product_up(shop, trained):
    customer = shop.customers[3]
    ranked = [r.product_id for r in serving.recommend(customer=customer, first=10)]
    ProductRule.objects.create(product_id=ranked[6], boost=50.0)

    boosted = [r.product_id for r in serving.recommend(customer=customer, first=10)]

    assert boosted.index(ranked[6]) < 6


@pytest.mark.django_db
def test_already_purchased_products_can_be_excluded(shop, trained):
    customer = shop.customers[4]
    bought = set(
        customer.orders.values_list("lines__product_id", flat=True)  # type: ignore[attr-defined]
    )

    with override_settings(CRM_RECS_EXCLUDE_PURCHASED=True):
        recs = serving.recommend(customer=customer, channel_id=CHANNEL, first=20)

    assert len(recs) == 20
    assert not bought & {r.product_id for r in recs}


@pytest.mark.django_db
def test_without_an_active_model_popularity_serves_everyone(shop, trained):
    ModelRun.objects.update(is_active=False)

    recs = serving.recommend(customer=shop.customers[0], channel_id=CHANNEL, first=3)

    assert [r.reason for r in recs] == [Reason.POPULAR] * 3


@pytest.mark.django_db
def test_the_model_cache_picks_up_a_newly_promoted_run(shop, trained):
    assert serving.model_cache.get().run_id == trained.pk

    newer = services.train_model()

    assert newer.pk != trained.pk
    assert serving.model_cache.get().run_id == newer.pk


@pytest.mark.django_db
def test_the_model_cache_is_trusted_for_the_check_interval(shop, trained):
    with override_settings(CRM_RECS_MODEL_CHECK_SECONDS=3600):
        serving.model_cache.clear()
        loaded = serving.model_cache.get()
        ModelRun.objects.update(is_active=False)
        assert serving.model_cache.get() is loaded


@pytest.mark.django_db
def test_similar_products_share_the_category(shop, trained):
    source = product(3000)

    recs = serving.similar_products(source, first=5)

    assert len(recs) == 5
    assert source not in {r.product_id for r in recs}
    assert {r.reason for r in recs} == {Reason.SIMILAR}
    assert sum(shop.categories[r.product_id] == 3 for r in recs) >= 3
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


@pytest.mark.django_db
def test_bought_together_ranks_by_confidence(db):
    for other, confidence, lift in (("B", 0.5, 2.0), ("C", 0.8, 1.5), ("D", 0.8, 3.0)):
        ProductAssociation.objects.create(
            product_id="A", other_product_id=other, support=4, confidence=confidence, lift=lift
        )
    ProductRule.objects.create(product_id="C", blocked=True)

    recs = serving.bought_together("A", first=5)

    assert [(r.product_id, r.score) for r in recs] == [("D", 0.8), ("B", 0.5)]
    assert recs[0].reason == Reason.BOUGHT_TOGETHER
    assert recs[0].explanation == "Bought together in 4 orders (lift 3.0)"
    assert recs[0].because_of == "A"


@pytest.mark.django_db
def test_bought_together_pairs_come_from_shared_orders(orders):
    ada, bob, cy = (
        Customer.objects.create(email=f"{n}@example.com", saleor_user_id=n)
        for n in ("ada", "bob", "cy")
    )
    for customer in (ada, bob, cy):
        orders.order(customer, [(product(1), 1), (product(2), 1)], at=START)
    orders.order(ada, [(product(3), 1), (product(4), 1)], at=START)
    orders.order(bob, [(product(3), 1), (product(4), 1)], at=START)
    orders.order(cy, [(product(5), 1)], at=START)
    with override_settings(CRM_RECS_MIN_INTERACTIONS=10_000):
        services.train_model()

    assert [r.product_id for r in serving.bought_together(product(1))] == [product(2)]
    assert [r.product_id for r in serving.bought_together(product(3))] == [product(4)]
    assert serving.bought_together(product(5)) == []
    pair = ProductAssociation.objects.get(product_id=product(3), other_product_id=product(4))
    # 6 orders; 3 and 4 each in 2: confidence 1, lift 1 / (2/6) = 3
    assert (pair.support, pair.confidence, pair.lift) == (2, 1.0, 3.0)


@pytest.mark.django_db
def test_similar_products_without_a_model_use_bought_together(db):
    ProductAssociation.objects.create(
        product_id="A", other_product_id="B", support=3, confidence=0.5, lift=2.0
    )

    recs = serving.similar_products("A")

    assert [(r.product_id, r.reason) for r in recs] == [("B", Reason.BOUGHT_TOGETHER)]


@pytest.mark.django_db
@pytest.mark.parametrize("first", [0, -1, 101])
def test_out_of_range_first_is_refused(first):
    with pytest.raises(RecommendationError) as excinfo:
        serving.recommend(customer=None, first=first)

    assert excinfo.value.code == RecommendationErrorCode.INVALID
    assert excinfo.value.field == "first"
    assert excinfo.value.message == "first must be between 1 and 100."


@pytest.mark.django_db
def test_similar_products_needs_a_product():
    with pytest.raises(RecommendationError) as excinfo:
        serving.similar_products("")

    assert (excinfo.value.code, excinfo.value.field) == (
        RecommendationErrorCode.REQUIRED,
        "product_id",
    )


@pytest.mark.django_db
def test_rules_are_cached_per_process_for_their_interval(shop, trained):
    customer = shop.customers[5]
    top = serving.recommend(customer=customer, first=1)[0].product_id

    with override_settings(CRM_RECS_RULES_CACHE_SECONDS=3600):
        serving.recommend(customer=customer, first=1)  # loads and caches the (empty) rules
        ProductRule.objects.create(product_id=top, blocked=True)
        cached = serving.recommend(customer=customer, first=1)[0].product_id
        serving.clear_caches()
        fresh = serving.recommend(customer=customer, first=1)[0].product_id

    assert cached == top
    assert fresh != top


@pytest.mark.django_db
def test_excluding_purchases_still_fills_the_list_for_heavy_buyers(shop, trained, orders):
    customer = shop.customers[6]
    # a customer who bought 80 of the 90 products
    orders.order(customer, [(pid, 1) for pid in list(shop.categories)[:80]], at=START)
    services.train_model()

    with override_settings(CRM_RECS_EXCLUDE_PURCHASED=True):
        recs = serving.recommend(customer=customer, first=10)

    bought = set(list(shop.categories)[:80])
    assert len(recs) == 10
    assert not bought & {r.product_id for r in recs}
    assert all(r.reason == Reason.PERSONAL for r in recs)


@pytest.mark.django_db
def test_a_warm_worker_serves_without_database_queries(shop, trained, django_assert_num_queries):
    customer = shop.customers[7]
    with override_settings(CRM_RECS_MODEL_CHECK_SECONDS=60, CRM_RECS_RULES_CACHE_SECONDS=60):
        serving.clear_caches()
        serving.recommend(customer=customer, channel_id=CHANNEL)  # warms model and rules
        serving.recommend(customer=None, channel_id=CHANNEL)  # warms the ranking

        with django_assert_num_queries(0):
            personal = serving.recommend(customer=customer, channel_id=CHANNEL)
            anonymous = serving.recommend(customer=None, channel_id=CHANNEL)
            similar = serving.similar_products(personal[0].product_id, channel_id=CHANNEL)

    assert len(personal) == len(anonymous) == len(similar) == 10
