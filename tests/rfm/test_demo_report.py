import io

import pytest

from saleor_crm_plugin.rfm import demo
from saleor_crm_plugin.rfm.models import RfmRun


@pytest.mark.django_db
def test_demo_report_prints_the_segment_table(make_customer, make_order):
    for i in range(8):
        person = make_customer(f"d{i}@example.com")
        for k in range(i + 1):
            make_order(person, days_ago=400 - 50 * i + k, charged=str(15 * (i + 1)))

    out = io.StringIO()
    demo.report(out)

    text = out.getvalue()
    run = RfmRun.objects.get()
    assert "channel default-channel: 8 customers" in text
    assert f"as of {run.as_of:%Y-%m-%d}" in text
    assert "Champions" in text and "Hibernating" in text and "AOV" in text
    assert "cut points (score 1|2|3|4|5): recency days" in text


@pytest.mark.django_db
def test_demo_report_without_orders():
    out = io.StringIO()
    demo.report(out)
    assert "no paid orders yet" in out.getvalue()
