from __future__ import annotations

import io

import pytest

from saleor_crm_plugin.recommendations import demo
from saleor_crm_plugin.recommendations.models import ModelRun


@pytest.mark.django_db
def test_demo_report_shows_metrics_and_reasons(shop):
    out = io.StringIO()

    demo.report(out)

    text = out.getvalue()
    run = ModelRun.objects.get()
    assert f"run {run.pk}: 120 customers x 90 products" in text
    assert "-> promoted" in text
    for scorer in ("model", "popularity", "buy_again"):
        assert f"    {scorer} " in text
    assert "What a few customers would see" in text
    assert "you bought Product" in text  # personal picks explained by a past purchase
    assert "(anonymous)" in text and "Popular in this shop" in text


@pytest.mark.django_db
def test_demo_report_on_an_empty_shop_says_popularity_serves(db):
    out = io.StringIO()

    demo.report(out)

    assert "insufficient_data" in out.getvalue()


@pytest.mark.django_db
def test_demo_report_previews_a_rejected_model_without_serving_it(shop):
    from django.test import override_settings

    out = io.StringIO()

    with override_settings(CRM_RECS_PROMOTION_MARGIN=100.0):
        demo.report(out)

    text = out.getvalue()
    assert "-> fallback" in text
    assert "PREVIEW of what the" in text
    assert "you bought Product" in text
    assert not ModelRun.objects.filter(is_active=True).exists()
