import pytest

from saleor_crm_plugin.core.saleor_api import SaleorClient
from saleor_crm_plugin.writeback.models import MetadataWriteback
from saleor_crm_plugin.writeback.services import flush, pending_count, queue_private_metadata

ADA = "VXNlcjo0Ng=="
GRACE = "VXNlcjo1MQ=="


def sent_requests(fake):
    return [r["body"]["variables"] for r in fake.requests if r["method"] == "POST"]


@pytest.fixture
def saleor(fake_saleor):
    fake_saleor.respond(lambda q, v, h: {"updatePrivateMetadata": {"errors": []}})
    return fake_saleor


@pytest.mark.django_db
def test_updates_coalesce_and_only_latest_values_are_sent(saleor):
    queue_private_metadata(ADA, {"crm.tier": "Silver", "crm.points": "10"})
    queue_private_metadata(ADA, {"crm.points": "25"})
    queue_private_metadata(GRACE, {"crm.rfm_segment": "Champions"})

    result = flush(client=SaleorClient(saleor.api_url, "app-token"), sleep=lambda s: None)

    assert (result.sent, result.failed, result.retried) == (2, 0, 0)
    assert sent_requests(saleor) == [
        {
            "id": ADA,
            "input": [{"key": "crm.points", "value": "25"}, {"key": "crm.tier", "value": "Silver"}],
        },
        {"id": GRACE, "input": [{"key": "crm.rfm_segment", "value": "Champions"}]},
    ]
    assert all(r["headers"]["Authorization"] == "Bearer app-token" for r in saleor.requests)
    assert pending_count() == 0


@pytest.mark.django_db
def test_unchanged_values_are_not_sent_again(saleor):
    client = SaleorClient(saleor.api_url, "t")
    queue_private_metadata(ADA, {"crm.tier": "Gold"})
    flush(client=client, sleep=lambda s: None)

    queue_private_metadata(ADA, {"crm.tier": "Gold"})

    assert pending_count() == 0
    assert flush(client=client, sleep=lambda s: None).sent == 0
    assert len(saleor.requests) == 1


@pytest.mark.django_db
def test_permanent_saleor_error_gives_up_without_retrying(fake_saleor):
    fake_saleor.respond(
        lambda q, v, h: {
            "updatePrivateMetadata": {
                "errors": [{"field": "id", "code": "NOT_FOUND", "message": "Couldn't resolve id"}]
            }
        }
    )
    queue_private_metadata(ADA, {"crm.tier": "Gold"})

    result = flush(client=SaleorClient(fake_saleor.api_url, "t"), sleep=lambda s: None)

    assert (result.sent, result.failed) == (0, 1)
    row = MetadataWriteback.objects.get()
    assert row.pending is False
    assert row.last_error == "NOT_FOUND: Couldn't resolve id"


@pytest.mark.django_db
def test_transport_failure_keeps_the_update_pending_with_backoff(fake_saleor):
    fake_saleor.respond(lambda q, v, h: (503, {"error": "maintenance"}))
    queue_private_metadata(ADA, {"crm.tier": "Gold"})

    result = flush(client=SaleorClient(fake_saleor.api_url, "t"), sleep=lambda s: None)

    assert (result.sent, result.retried) == (0, 1)
    row = MetadataWriteback.objects.get()
    assert row.pending is True
    assert row.attempts == 1
    assert row.claimed_until is not None  # not retried before the backoff passes
    assert flush(client=SaleorClient(fake_saleor.api_url, "t"), sleep=lambda s: None).retried == 0


@pytest.mark.django_db
def test_rate_limit_spaces_requests(saleor, settings):
    settings.CRM_WRITEBACK_RATE_PER_SECOND = 2
    for n in range(4):
        queue_private_metadata(f"VXNlcjo{n}", {"crm.points": str(n)})
    now = [1000.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    flush(client=SaleorClient(saleor.api_url, "t"), sleep=sleep, clock=lambda: now[0])

    assert slept == [0.5, 0.5, 0.5]
    assert len(saleor.requests) == 4


@pytest.mark.django_db
def test_flush_without_a_configured_saleor_keeps_everything(db):
    queue_private_metadata(ADA, {"crm.tier": "Gold"})

    result = flush(sleep=lambda s: None)

    assert result.configured is False
    assert pending_count() == 1
