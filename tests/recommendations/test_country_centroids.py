"""Country centroids: a signed-in customer without purchases, in a run without user features,
is scored from the mean vector of the trained customers of their country (when there are
enough of them) instead of the channel's popular products; nothing else changes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.recommendations import services, serving
from saleor_crm_plugin.recommendations.centroids import country_centroids
from saleor_crm_plugin.recommendations.data import extract_interactions
from saleor_crm_plugin.recommendations.models import (
    ModelArtefact,
    ModelRun,
    ProductAvailability,
    ProductRule,
)
from saleor_crm_plugin.recommendations.serving import LoadedModel, Reason
from saleor_crm_plugin.recommendations.training import fit
from tests.recommendations.builders import CHANNEL, START, OrderFactory, Shop, build_shop
from tests.recommendations.test_user_features import COUNTRIES, favourite_share, give_countries

SMALL = "LU"  # a country of a few customers: below the default minimum of 20
OFF = {"CRM_RECS_COUNTRY_CENTROIDS": False}


@pytest.fixture
def centroid_shop(db: object, orders: OrderFactory) -> Shop:
    """180 customers (about 30 per country: every main country clears the default minimum)
    whose country is their favourite category's for 90% of them, and 4 in ``SMALL``."""
    shop = build_shop(factory=orders, n_customers=180)
    give_countries(shop)
    small = [c for c in shop.customers if shop.favourite[c.pk] == 5][:4]
    for customer in small:
        customer.country_code = SMALL
    Customer.objects.bulk_update(small, ["country_code"])
    return shop


def newcomer(country: str, email: str = "new@example.com") -> Customer:
    return Customer.objects.create(email=email, country_code=country)


def top(model: LoadedModel, vector: np.ndarray, n: int = 10) -> list[str]:
    scores = model.item_factors @ vector + model.item_biases
    return [model.item_ids[i] for i in np.argsort(-scores, kind="stable")[:n]]


def train() -> ModelRun:
    run = services.train_model()
    assert run.is_active and run.n_user_features == 0
    return run


@pytest.mark.django_db
def test_a_new_customer_gets_the_mean_vector_of_their_countrys_customers(centroid_shop):
    run = train()
    model = serving.model_cache.get()
    assert model is not None
    german = newcomer("DE")
    anonymous = serving.recommend(customer=None, channel_id=CHANNEL, first=10)

    recs = serving.recommend(customer=german, channel_id=CHANNEL, first=10)

    assert [r.reason for r in recs] == [Reason.SIMILAR_SHOPPERS] * 10
    assert {r.explanation for r in recs} == {"Popular with shoppers in your country"}
    assert all(r.run_id == run.pk and not r.because_of for r in recs)
    # Exactly the mean of the stored vectors of the trained German customers.
    germans = set(Customer.objects.filter(country_code="DE").values_list("pk", flat=True))
    rows = [model.user_index[pk] for pk in germans if pk in model.user_index]
    assert len(rows) >= 20
    assert [r.product_id for r in recs] == top(model, model.user_factors[rows].mean(axis=0))
    # Country decides taste in this shop: the centroid finds it, popularity does not.
    category = COUNTRIES.index("DE")
    assert favourite_share(centroid_shop, recs, category) >= 0.8
    assert favourite_share(centroid_shop, anonymous, category) < 0.5
    for n, country in enumerate(COUNTRIES):
        mine = serving.recommend(customer=newcomer(country, f"{country}@example.com"), first=10)
        assert favourite_share(centroid_shop, mine, n) >= 0.7, country
        assert favourite_share(centroid_shop, mine, n) > favourite_share(
            centroid_shop, anonymous, n
        )


@pytest.mark.django_db
def test_offline_the_served_centroid_ranks_first_orders_better_than_popularity(centroid_shop):
    data = extract_interactions()
    params = services.params_from_settings()

    cold = services.evaluate_cold_start(data, params, max_users=100, share=0.25, centroids=True)
    everyone = services.evaluate_cold_start(
        data, params, max_users=100, share=0.25, centroids=True, centroid_min_customers=10**6
    )

    assert cold.n_test_users == 45
    centroid = cold.metrics["country_centroid"]["ndcg"]
    assert centroid > 2 * cold.metrics["popularity"]["ndcg"]
    assert centroid > 0.7 * cold.metrics["country_popularity"]["ndcg"]
    # Nobody clears an impossible minimum: then it is the popular fallback, as served.
    assert everyone.metrics["country_centroid"] == everyone.metrics["popularity"]


@pytest.mark.django_db
def test_a_country_below_the_minimum_and_unknown_countries_get_popular_products(centroid_shop):
    train()
    anonymous = serving.recommend(customer=None, channel_id=CHANNEL, first=10)
    trained_here = Counter(Customer.objects.values_list("country_code", flat=True))[SMALL]
    assert trained_here == 4

    for country in (SMALL, "ZZ", ""):
        recs = serving.recommend(customer=newcomer(country, f"{country}x@e.com"), first=10)
        recs_in_channel = serving.recommend(
            customer=Customer.objects.get(email=f"{country}x@e.com"), channel_id=CHANNEL
        )
        assert [r.reason for r in recs] == [Reason.POPULAR] * 10, country
        assert [r.product_id for r in recs_in_channel] == [r.product_id for r in anonymous]

    # The minimum is what keeps the small country out (read per request: no retraining).
    with override_settings(CRM_RECS_COUNTRY_CENTROID_MIN_CUSTOMERS=4):
        recs = serving.recommend(customer=Customer.objects.get(email="LUx@e.com"), first=10)
    assert [r.reason for r in recs] == [Reason.SIMILAR_SHOPPERS] * 10


@pytest.mark.django_db
def test_setting_off_gives_popular_products_and_leaves_everyone_else_alone(
    centroid_shop, orders: OrderFactory
):
    train()
    german = newcomer("DE")
    # A customer who first bought after training keeps the fold-in path.
    late = newcomer("FR", "late@example.com")
    bought = centroid_shop.customers[0]
    orders.order(late, [(pid, 1) for pid in list(centroid_shop.categories)[:2]], at=START)
    known = centroid_shop.customers[:40]

    def served() -> dict[str, list[serving.Recommendation]]:
        lists = {str(c.pk): serving.recommend(customer=c, channel_id=CHANNEL) for c in known}
        lists["late"] = serving.recommend(customer=late, channel_id=CHANNEL)
        lists["anonymous"] = serving.recommend(customer=None, channel_id=CHANNEL)
        lists["german"] = serving.recommend(customer=german, channel_id=CHANNEL)
        return lists

    on = served()
    with override_settings(**OFF):
        off = served()

    assert [r.reason for r in on["german"]] == [Reason.SIMILAR_SHOPPERS] * 10
    assert [r.reason for r in off["german"]] == [Reason.POPULAR] * 10
    assert off["german"] == off["anonymous"]
    assert on["german"] != on["anonymous"]
    # Trained and folded-in customers and anonymous shoppers: identical either way.
    del on["german"], off["german"]
    assert on == off
    assert {r.reason for r in on[str(bought.pk)]} <= {Reason.PERSONAL, Reason.BUY_AGAIN}
    assert {r.reason for r in on["late"]} <= {Reason.PERSONAL, Reason.BUY_AGAIN}
    assert all(r.reason == Reason.POPULAR for r in on["anonymous"])


@pytest.mark.django_db
def test_centroid_lists_obey_blocklist_availability_and_boosts(centroid_shop):
    train()
    model = serving.model_cache.get()
    assert model is not None
    vector = model.country_centroid("DE", 1)
    assert vector is not None
    ranked = top(model, vector, 20)
    german = newcomer("DE")
    ProductRule.objects.create(product_id=ranked[0], blocked=True)
    ProductAvailability.objects.create(product_id=ranked[1], channel_id=CHANNEL, is_available=False)
    ProductRule.objects.create(product_id=ranked[15], boost=100.0)

    recs = serving.recommend(customer=german, channel_id=CHANNEL, first=10)

    ids = [r.product_id for r in recs]
    assert ranked[0] not in ids and ranked[1] not in ids
    assert ids[0] == ranked[15]
    assert ids[1:] == ranked[2:11]
    assert [r.reason for r in recs] == [Reason.SIMILAR_SHOPPERS] * 10


@pytest.mark.django_db
def test_loading_and_a_cold_start_request_cost_no_extra_query(centroid_shop):
    train()
    german = newcomer("DE")
    serving.clear_caches()
    with CaptureQueriesContext(connection) as loading:
        model = serving.model_cache.get()
    # The active run's id and its artefact row, as before: centroids come with the row.
    assert len(loading) == 2
    assert model is not None and "DE" in model.centroid_index
    with override_settings(**OFF), CaptureQueriesContext(connection) as before:
        popular = serving.recommend(customer=german, channel_id=CHANNEL)
    with CaptureQueriesContext(connection) as after:
        recs = serving.recommend(customer=german, channel_id=CHANNEL)

    assert popular[0].reason == Reason.POPULAR and recs[0].reason == Reason.SIMILAR_SHOPPERS
    assert len(after) <= len(before)


@pytest.mark.django_db
def test_centroids_are_stored_with_the_artefact_and_older_runs_keep_popular(centroid_shop):
    run = train()
    data = extract_interactions()
    artefact = ModelArtefact.objects.get(run=run)
    params = services.params_from_settings()
    history = data.matrix(half_life_days=params.half_life_days)
    reps = fit(history, services.item_features(data, params), params)
    loaded = serving.model_cache.get()
    assert loaded is not None

    expected = country_centroids(loaded.user_factors, data.user_countries)
    assert artefact.centroid_countries == sorted([*COUNTRIES, SMALL]) == expected.countries
    assert artefact.centroid_customers == expected.customers
    assert sum(expected.customers) == len(centroid_shop.customers)
    assert loaded.centroid_factors.dtype == np.float32
    assert np.array_equal(loaded.centroid_factors, expected.factors)
    # The demo's in-memory preview gets the same centroids from the same data.
    preview = LoadedModel.from_representations(
        run.pk, data.user_ids, data.item_ids, reps, history, 0.0, [], data.user_countries
    )
    assert preview.centroid_index == loaded.centroid_index
    assert np.array_equal(
        preview.centroid_factors, country_centroids(reps.user_factors, data.user_countries).factors
    )

    # An artefact stored before centroids existed: popular products, as before.
    ModelArtefact.objects.filter(run=run).update(
        centroid_countries=[], centroid_customers=[], centroid_factors=b""
    )
    serving.clear_caches()
    recs = serving.recommend(customer=newcomer("DE"), channel_id=CHANNEL)
    assert [r.reason for r in recs] == [Reason.POPULAR] * 10


@pytest.mark.django_db
def test_a_run_with_user_features_keeps_scoring_newcomers_from_the_feature_embeddings(
    centroid_shop,
):
    with override_settings(CRM_RECS_USER_COUNTRY_FEATURES=True):
        run = services.train_model()
    assert run.is_active and run.n_user_features == len(COUNTRIES) + 1
    model = serving.model_cache.get()
    assert model is not None
    german = newcomer("DE")

    recs = serving.recommend(customer=german, channel_id=CHANNEL, first=10)

    features = serving.cold_start_features(german, CHANNEL)
    feature_vector = model.feature_vector(features)
    centroid = model.country_centroid("DE", 1)
    assert feature_vector is not None and centroid is not None
    assert [r.product_id for r in recs] == top(model, feature_vector)
    assert top(model, feature_vector) != top(model, centroid)
    assert [r.reason for r in recs] == [Reason.SIMILAR_SHOPPERS] * 10


def test_country_centroids_are_plain_means_per_known_country():
    factors = np.arange(12, dtype=np.float32).reshape(6, 2)
    countries = ["FR", "", "DE", "FR", "FR", "DE"]

    found = country_centroids(factors, countries)
    only = country_centroids(factors, countries, np.array([0, 2, 3]))

    assert found.countries == ["DE", "FR"] and found.customers == [2, 3]
    assert found.factors.dtype == np.float32
    assert np.array_equal(found.factors, [factors[[2, 5]].mean(0), factors[[0, 3, 4]].mean(0)])
    assert only.customers == [1, 2]
    assert np.array_equal(only.factors[1], factors[[0, 3]].mean(0))
    assert country_centroids(factors, []).countries == []
    assert country_centroids(factors, [""] * 6).factors.shape == (0, 2)


@pytest.mark.django_db
def test_a_customer_read_with_only_what_serving_reads_costs_no_extra_query(centroid_shop):
    """The storefront reads the signed-in customer with ``serving.CUSTOMER_READS`` only: a
    cold and a trained customer get the same recommendations from it as from a whole row,
    in as many queries (a column serving reads and the reader left out would cost one)."""
    from saleor_crm_plugin.graphql.customers.dataloaders import CUSTOMERS

    train()
    serving.model_cache.get()
    for customer in (newcomer("DE"), centroid_shop.customers[0]):
        with CaptureQueriesContext(connection) as whole:
            expected = serving.recommend(customer=customer, channel_id=CHANNEL)
        (narrow,) = CUSTOMERS.fetch("t.id = %s", [customer.pk], only=serving.CUSTOMER_READS)
        assert narrow.get_deferred_fields() >= {"email", "first_name"}
        with CaptureQueriesContext(connection) as queries:
            assert serving.recommend(customer=narrow, channel_id=CHANNEL) == expected
        assert len(queries) == len(whole)
