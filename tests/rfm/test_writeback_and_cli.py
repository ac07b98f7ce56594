"""Write-back of segment and scores (only what changed), the beat task and the CLI."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from saleor_crm_plugin.beat import BEAT_SCHEDULE
from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.models import CustomerRfm, RfmRun, RfmRunKind
from saleor_crm_plugin.tasks.rfm import rfm_nightly_task, rfm_recompute_task
from saleor_crm_plugin.writeback.models import MetadataWriteback
from saleor_crm_plugin.writeback.services import queue_private_metadata
from tests.rfm.conftest import AS_OF, CHANNEL

ENGINES = ["sql", "python"]


@pytest.fixture
def shoppers(make_customer, make_order):
    people = [make_customer(f"s{i}@example.com") for i in range(6)]
    for i, person in enumerate(people):
        for k in range(i + 1):
            make_order(person, days_ago=3 * i + k, charged=str(20 + i))
    guest = make_customer("guest@example.com", guest=True)
    make_order(guest, days_ago=1)
    return people


def _mark_all_sent():
    MetadataWriteback.objects.update(pending=False, sent_at=timezone.now())


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_segment_and_scores_are_queued_only_when_they_change(shoppers, make_order, engine):
    services.recompute(CHANNEL, as_of=AS_OF, engine=engine, write_back=True)

    rows = {w.object_id: w for w in MetadataWriteback.objects.all()}
    assert set(rows) == {p.saleor_user_id for p in shoppers}  # the guest has no Saleor user
    s5 = CustomerRfm.objects.get(customer=shoppers[5])
    assert rows[shoppers[5].saleor_user_id].items == {
        # plain keys: the channel scored last (like crm.points); suffixed: every channel
        "crm.rfm_segment": s5.segment,
        "crm.rfm_scores": s5.scores,
        "crm.rfm_segment.default-channel": s5.segment,
        "crm.rfm_scores.default-channel": s5.scores,
    }
    assert all(w.pending for w in rows.values())

    _mark_all_sent()
    services.recompute(CHANNEL, as_of=AS_OF, engine=engine, write_back=True, full=True)
    assert not MetadataWriteback.objects.filter(pending=True).exists()

    for _ in range(10):
        make_order(shoppers[0], days_ago=0, charged="900")
    run = services.recompute(CHANNEL, as_of=AS_OF, engine=engine, write_back=True)
    changed = set(
        CustomerRfm.objects.filter(changed_run_id=run.pk).values_list(
            "customer__saleor_user_id", flat=True
        )
    )
    assert shoppers[0].saleor_user_id in changed
    pending = MetadataWriteback.objects.filter(pending=True)
    assert set(pending.values_list("object_id", flat=True)) == changed - {None}
    row = pending.get(object_id=shoppers[0].saleor_user_id)
    assert row.version == 2
    assert (
        row.items["crm.rfm_scores.default-channel"]
        == CustomerRfm.objects.get(customer=shoppers[0]).scores
    )


@pytest.mark.django_db
def test_bulk_write_back_keeps_other_keys_and_matches_queue_private_metadata(shoppers):
    user = shoppers[2].saleor_user_id
    queue_private_metadata(user, {"crm.tier": "gold"})
    services.recompute(CHANNEL, as_of=AS_OF, engine="sql", write_back=True)
    bulk = MetadataWriteback.objects.get(object_id=user)
    assert bulk.items["crm.tier"] == "gold"
    assert bulk.version == 2

    # the same values through the one-by-one API change nothing more
    queue_private_metadata(user, {k: v for k, v in bulk.items.items() if k != "crm.tier"})
    assert MetadataWriteback.objects.get(object_id=user).version == 2


@pytest.mark.django_db
@override_settings(CRM_RFM_WRITEBACK=False)
def test_write_back_can_be_switched_off(shoppers):
    services.recompute(CHANNEL, as_of=AS_OF)
    assert CustomerRfm.objects.count() == 7
    assert not MetadataWriteback.objects.exists()


@pytest.mark.django_db
def test_nightly_task_is_incremental_with_a_periodic_full_run(shoppers):
    assert BEAT_SCHEDULE["crm-rfm-nightly"]["task"] == rfm_nightly_task.name

    rfm_nightly_task.delay()
    rfm_nightly_task.delay()
    assert list(RfmRun.objects.order_by("pk").values_list("kind", flat=True)) == [
        RfmRunKind.FULL,
        RfmRunKind.INCREMENTAL,
    ]
    RfmRun.objects.update(started_at=timezone.now() - timedelta(days=8))
    rfm_nightly_task.delay()
    assert RfmRun.objects.order_by("-pk").first().kind == RfmRunKind.FULL

    rfm_recompute_task.delay(CHANNEL, full=True)
    assert RfmRun.objects.count() == 4
    assert CustomerRfm.objects.count() == 7


@pytest.mark.django_db
def test_cli_recompute_summary_movement_export_and_map(shoppers, tmp_path):
    out = io.StringIO()
    call_command("crm_rfm", "recompute", "--as-of", "latest", stdout=out)
    assert "default-channel: run" in out.getvalue()
    assert "scored 7 customers" in out.getvalue()
    call_command("crm_rfm", "recompute", "--channel", "default-channel", stdout=io.StringIO())

    out = io.StringIO()
    call_command("crm_rfm", "summary", "--channel", CHANNEL, stdout=out)
    table = out.getvalue()
    assert "Champions" in table and "Hibernating" in table and "share" in table

    out = io.StringIO()
    call_command("crm_rfm", "movement", "--channel", CHANNEL, stdout=out)
    assert "Movement from run" in out.getvalue()

    target = tmp_path / "segment.csv"
    call_command(
        "crm_rfm", "export", "--channel", CHANNEL, "--output", str(target), stderr=io.StringIO()
    )
    assert target.read_text().splitlines()[0].startswith("email,first_name")
    assert len(target.read_text().splitlines()) == 8

    spec = tmp_path / "map.json"
    spec.write_text(
        json.dumps(
            [
                {"slug": "best", "name": "Best", "cells": ["R4-5F1-5"]},
                {"slug": "rest", "name": "Rest", "cells": ["R1-3F1-5"]},
            ]
        )
    )
    out = io.StringIO()
    call_command("crm_rfm", "map", "--channel", CHANNEL, "--set", str(spec), stdout=out)
    assert "Best" in out.getvalue()
    spec.write_text(json.dumps([{"slug": "best", "name": "Best", "cells": ["R4-5F1-5"]}]))
    with pytest.raises(CommandError, match=r"segments: Every R x F cell needs a segment"):
        call_command("crm_rfm", "map", "--channel", CHANNEL, "--set", str(spec))
    with pytest.raises(CommandError, match="CHANNEL_NOT_FOUND"):
        call_command("crm_rfm", "summary", "--channel", "nope")
