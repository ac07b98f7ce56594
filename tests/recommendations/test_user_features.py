"""User features (country, channels bought in): a new customer of a known country is scored
from what the model learnt about that country instead of falling straight to popularity."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from django.test import override_settings

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.recommendations import services, serving
from saleor_crm_plugin.recommendations.data import (
    channel_feature,
    country_feature,
    extract_interactions,
    last_order_holdout,
)
from saleor_crm_plugin.recommendations.models import ModelArtefact, ModelRun
from saleor_crm_plugin.recommendations.serving import LoadedModel, Reason
from saleor_crm_plugin.recommendations.training import fit
from tests.recommendations.builders import (
    CHANNEL,
    OTHER_CHANNEL,
    START,
    OrderFactory,
    Shop,
    build_shop,
    product,
)

# Category n is the favourite of (most) customers living in COUNTRIES[n].
COUNTRIES = ["GB", "FR", "DE", "ES", "IT", "NL"]
BOTH = {"CRM_RECS_USER_COUNTRY_FEATURES": True, "CRM_RECS_USER_CHANNEL_FEATURES": True}


def give_countries(shop: Shop, *, noise: float = 0.1, seed: int = 3) -> None:
    """Each customer lives in the country of their favourite category (``noise`` of them in
    a random one): country predicts taste, which only user features can exploit."""
    rng = random.Random(seed)
    for customer in shop.customers:
        favourite = shop.favourite[customer.pk]
        customer.country_code = (
            rng.choice(COUNTRIES) if rng.random() < noise else COUNTRIES[favourite]
        )
    Customer.objects.bulk_update(shop.customers, ["country_code"])


@pytest.fixture
def country_shop(shop: Shop) -> Shop:
    give_countries(shop)
    return shop


def favourite_share(shop: Shop, recs: list[serving.Recommendation], category: int) -> float:
    return sum(shop.categories[r.product_id] == category for r in recs) / len(recs)


@pytest.mark.django_db
def test_user_features_are_identity_channels_and_country_normalised(orders: OrderFactory):
    ada = Customer.objects.create(email="ada@example.com", saleor_user_id="U1", country_code="FR")
    bob = Customer.objects.create(email="bob@example.com", saleor_user_id="U2")
    orders.order(ada, [(product(1), 1)], at=START)
    orders.order(ada, [(product(2), 1)], at=START + timedelta(days=3), channel_id=OTHER_CHANNEL)
    orders.order(bob, [(product(1), 2)], at=START + timedelta(days=1))

    data = extract_interactions()
    a, b = data.user_ids.index(ada.pk), data.user_ids.index(bob.pk)
    assert data.user_countries[a] == "FR" and data.user_countries[b] == ""

    assert data.user_features() is None  # both settings off: LightFM's own identity
    names = data.user_feature_names(use_channels=True, use_countries=True)
    channels = sorted([channel_feature(CHANNEL), channel_feature(OTHER_CHANNEL)])
    assert names == [*channels, country_feature("FR")]
    matrix = data.user_features(use_channels=True, use_countries=True)
    assert matrix is not None
    dense = matrix.toarray()
    assert dense.shape == (2, 2 + 3)
    col = {name: 2 + i for i, name in enumerate(names)}
    ada_row = {
        a: 0.25,
        col[channel_feature(CHANNEL)]: 0.25,
        col[channel_feature(OTHER_CHANNEL)]: 0.25,
    }
    ada_row[col[country_feature("FR")]] = 0.25
    assert dense[a].tolist() == pytest.approx([ada_row.get(i, 0.0) for i in range(5)])
    bob_row = {b: 0.5, col[channel_feature(CHANNEL)]: 0.5}  # no country known
    assert dense[b].tolist() == pytest.approx([bob_row.get(i, 0.0) for i in range(5)])

    countries_only = data.user_features(use_countries=True)
    assert countries_only is not None
    assert countries_only.shape == (2, 3)

    # The holdout fit must not learn a channel from the held-out (last) order.
    holdout = last_order_holdout(data)
    masked = data.user_features(holdout.train_mask, use_channels=True).toarray()
    assert masked.shape == (2, 4)  # same columns as the refit, so warm start works
    assert masked[a, col[channel_feature(OTHER_CHANNEL)]] == 0
    assert masked[a, col[channel_feature(CHANNEL)]] == pytest.approx(0.5)


@pytest.mark.django_db
def test_cold_start_from_country_beats_popularity_offline(country_shop):
    data = extract_interactions()
    params = services.params_from_settings()
    with_features = services.evaluate_cold_start(
        data, services.params_from_settings(use_user_countries=True), max_users=100, share=0.25
    )
    without = services.evaluate_cold_start(data, params, max_users=100, share=0.25)

    assert with_features.n_test_users == without.n_test_users == 30
    # Without user features the cold customer gets the channel's popular products.
    assert without.metrics["model"] == without.metrics["popularity"]
    model = with_features.metrics["model"]["ndcg"]
    popularity = with_features.metrics["popularity"]["ndcg"]
    assert model > 2 * popularity
    # The non-model reference that knows the answer's structure: the model gets close.
    assert model > 0.7 * with_features.metrics["country_popularity"]["ndcg"]


@pytest.mark.django_db
def test_a_new_customer_of_a_known_country_is_scored_from_its_embedding(country_shop):
    with override_settings(**BOTH):
        run = services.train_model()
    assert run.is_active
    # Six countries; the shop's only channel adds no column (it tells nobody apart).
    assert run.n_user_features == len(COUNTRIES)
    assert ModelArtefact.objects.get(run=run).user_feature_names == sorted(
        country_feature(c) for c in COUNTRIES
    )
    assert run.params["use_user_countries"] is True
    newcomer = Customer.objects.create(email="new@example.com", country_code="DE")
    anonymous = serving.recommend(customer=None, channel_id=CHANNEL, first=10)

    recs = serving.recommend(customer=newcomer, channel_id=CHANNEL, first=10)

    assert [r.reason for r in recs] == [Reason.SIMILAR_SHOPPERS] * 10
    assert recs[0].explanation == "Popular with shoppers in your country"
    assert all(r.run_id == run.pk and not r.because_of for r in recs)
    german = COUNTRIES.index("DE")
    assert favourite_share(country_shop, recs, german) >= 0.8
    assert favourite_share(country_shop, recs, german) > favourite_share(
        country_shop, anonymous, german
    )
    # Anonymous shoppers and customers without any known feature keep popular products.
    assert [r.reason for r in anonymous] == [Reason.POPULAR] * 10
    nowhere = Customer.objects.create(email="nowhere@example.com", country_code="ZZ")
    unknown = serving.recommend(customer=nowhere, channel_id="", first=10)
    assert [r.reason for r in unknown] == [Reason.POPULAR] * 10


@pytest.mark.django_db
def test_customers_of_another_channel_are_learnt_from_the_channel(db, orders):
    """No countries at all: the channel a newcomer shops in is what tells them apart."""
    shop = build_shop(factory=orders, seed=11)
    rng = random.Random(5)
    from saleor_crm_plugin.customers.models import Order

    # Fans of category 4 shop in the other channel.
    fans = [c.pk for c in shop.customers if shop.favourite[c.pk] == 4 and rng.random() < 0.95]
    Order.objects.filter(customer_id__in=fans).update(channel_id=OTHER_CHANNEL)
    newcomer = Customer.objects.create(email="new@example.com")

    with override_settings(CRM_RECS_USER_CHANNEL_FEATURES=True):
        run = services.train_model()
    assert run.is_active and run.n_user_features == 2
    recs = serving.recommend(customer=newcomer, channel_id=OTHER_CHANNEL, first=10)

    assert [r.reason for r in recs] == [Reason.SIMILAR_SHOPPERS] * 10
    assert recs[0].explanation == "Popular with shoppers like you"
    assert favourite_share(shop, recs, 4) >= 0.8


@pytest.mark.parametrize(
    "settings",
    [{}, {"CRM_RECS_USER_CHANNEL_FEATURES": True}],
    ids=["off", "channels-of-a-one-channel-shop"],
)
@pytest.mark.django_db
# Country centroids (the default cold start without user features, added after this test)
# off: the behaviour before both, which that setting keeps; test_country_centroids.py covers
# the default.
@override_settings(CRM_RECS_COUNTRY_CENTROIDS=False)
def test_setting_off_keeps_popular_products_for_new_customers(country_shop, settings):
    with override_settings(**settings):
        run = services.train_model()
    assert run.is_active
    assert run.n_user_features == 0
    assert run.params["use_user_countries"] is False
    assert run.params["use_user_channels"] is bool(settings)
    artefact = ModelArtefact.objects.get(run=run)
    assert artefact.user_feature_names == []
    assert bytes(artefact.user_feature_factors) == b""
    newcomer = Customer.objects.create(email="new@example.com", country_code="DE")

    recs = serving.recommend(customer=newcomer, channel_id=CHANNEL, first=10)
    anonymous = serving.recommend(customer=None, channel_id=CHANNEL, first=10)

    assert [r.reason for r in recs] == [Reason.POPULAR] * 10
    assert [r.product_id for r in recs] == [r.product_id for r in anonymous]


@pytest.mark.django_db
def test_without_features_the_fit_is_the_one_without_user_features(country_shop):
    """The setting off passes no user-feature matrix: bit-identical to the fit before the
    feature existed; the setting on changes the trained customers' vectors."""
    data = extract_interactions()
    params = services.params_from_settings()
    matrix = data.matrix(half_life_days=params.half_life_days)
    items = services.item_features(data, params)
    before = fit(matrix, items, params)
    off = fit(matrix, items, params, user_features=services.user_features(data, params))
    on_params = services.params_from_settings(use_user_countries=True)
    on = fit(matrix, items, on_params, user_features=services.user_features(data, on_params))

    assert off.user_factors.tobytes() == before.user_factors.tobytes()
    assert off.item_factors.tobytes() == before.item_factors.tobytes()
    assert off.user_feature_factors is not None and off.user_feature_factors.shape == (0, 16)
    assert on.user_feature_factors is not None and on.user_feature_factors.shape == (6, 16)
    assert not np.allclose(on.user_factors, before.user_factors)


@pytest.mark.django_db
def test_user_feature_embeddings_round_trip_through_the_artefact(country_shop):
    data = extract_interactions()
    params = services.params_from_settings(use_user_countries=True, use_user_channels=True)
    names = services.user_feature_names(data, params)
    history = data.matrix(half_life_days=params.half_life_days)
    reps = fit(
        history,
        services.item_features(data, params),
        params,
        user_features=services.user_features(data, params),
    )
    run = ModelRun.objects.create()

    artefact = services.save_artefact(run, data, reps, history, params.repeat_weight, names)
    artefact.refresh_from_db()
    loaded = LoadedModel.from_artefact(artefact)
    in_memory = LoadedModel.from_representations(
        run.pk, data.user_ids, data.item_ids, reps, history, params.repeat_weight, names
    )

    assert artefact.user_feature_names == names
    assert loaded.user_feature_factors.dtype == np.float32
    assert np.array_equal(loaded.user_feature_factors, reps.user_feature_factors)
    assert np.array_equal(
        np.frombuffer(bytes(artefact.user_feature_biases), np.float32), reps.user_feature_biases
    )
    assert np.array_equal(loaded.user_factors, reps.user_factors)  # features folded in
    assert loaded.user_feature_index == in_memory.user_feature_index
    french = [channel_feature(CHANNEL), country_feature("FR")]
    vector = loaded.feature_vector(french)
    assert vector is not None
    assert np.array_equal(vector, in_memory.feature_vector(french))
    # One channel only: no channel column, so the country's embedding alone.
    assert channel_feature(CHANNEL) not in names
    assert np.array_equal(vector, reps.user_feature_factors[names.index(country_feature("FR"))])
    assert loaded.feature_vector([country_feature("ZZ")]) is None

    with pytest.raises(ValueError, match="user-feature names"):
        services.save_artefact(ModelRun.objects.create(), data, reps, history, 0.0, names[:1])


@pytest.mark.django_db
def test_precomputed_lists_match_on_the_fly_scoring_with_user_features(country_shop):
    with override_settings(**BOTH):
        run = services.train_model()
        assert run.is_active
        for customer in country_shop.customers[:5]:
            with override_settings(CRM_RECS_SERVE_PRECOMPUTED=True):
                precomputed = serving.recommend(customer=customer, channel_id=CHANNEL)
            on_the_fly = serving.recommend(customer=customer, channel_id=CHANNEL)
            assert [r.product_id for r in precomputed] == [r.product_id for r in on_the_fly]
            assert all(r.reason in (Reason.PERSONAL, Reason.BUY_AGAIN) for r in on_the_fly)
