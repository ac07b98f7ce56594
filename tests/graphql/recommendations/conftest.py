from tests.recommendations.conftest import _recs_settings, orders, shop

__all__ = ["_recs_settings", "orders", "shop"]
