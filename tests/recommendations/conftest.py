from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from saleor_crm_plugin.recommendations.serving import clear_caches
from tests.recommendations.builders import OrderFactory, Shop, build_shop

# One thread and a fixed seed: training is bit-for-bit reproducible, so tests are stable.
FAST = {
    "CRM_RECS_THREADS": 1,
    "CRM_RECS_SEED": 7,
    "CRM_RECS_EPOCHS": 15,
    "CRM_RECS_COMPONENTS": 16,
    "CRM_RECS_MIN_INTERACTIONS": 50,
    "CRM_RECS_REPEAT_WEIGHT": 0.0,
    "CRM_RECS_MODEL_CHECK_SECONDS": 0,
    "CRM_RECS_RULES_CACHE_SECONDS": 0,
    "CRM_RECS_ASSOCIATION_MIN_SUPPORT": 2,
}


@pytest.fixture(autouse=True)
def _recs_settings() -> Iterator[None]:
    clear_caches()
    with override_settings(**FAST):
        yield
    clear_caches()


@pytest.fixture
def orders(db: Any) -> OrderFactory:
    return OrderFactory()


@pytest.fixture
def shop(db: Any, orders: OrderFactory) -> Shop:
    return build_shop(factory=orders)
