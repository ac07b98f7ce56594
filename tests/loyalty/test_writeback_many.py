"""queue_private_metadata_many keeps queue_private_metadata's semantics for many objects."""

import pytest

from saleor_crm_plugin.writeback.models import MetadataWriteback
from saleor_crm_plugin.writeback.services import (
    queue_private_metadata,
    queue_private_metadata_many,
)


@pytest.mark.django_db
def test_many_objects_merge_into_pending_rows_and_skip_unchanged_sent_values():
    queue_private_metadata("A", {"crm.tier": "gold", "crm.rfm_segment": "Champions"})
    MetadataWriteback.objects.create(
        object_id="B", items={"crm.points": "5"}, pending=False, sent_at="2026-01-01T00:00:00Z"
    )

    queue_private_metadata_many(
        {"A": {"crm.points": "10"}, "B": {"crm.points": "5"}, "C": {"crm.points": 7}, "": {"x": 1}}
    )

    rows = {row.object_id: row for row in MetadataWriteback.objects.all()}
    assert set(rows) == {"A", "B", "C"}
    assert rows["A"].items == {
        "crm.tier": "gold",
        "crm.rfm_segment": "Champions",
        "crm.points": "10",
    }
    assert (rows["A"].pending, rows["A"].version) == (True, 2)
    assert (rows["B"].pending, rows["B"].version) == (False, 1)  # already sent, unchanged
    assert (rows["C"].items, rows["C"].pending) == ({"crm.points": "7"}, True)

    queue_private_metadata_many({"B": {"crm.points": "6"}})
    rows["B"].refresh_from_db()
    assert (rows["B"].items, rows["B"].pending, rows["B"].version) == ({"crm.points": "6"}, True, 2)


@pytest.mark.django_db
def test_many_objects_requeue_unchanged_values_never_sent_and_lock_the_rows_they_read():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    MetadataWriteback.objects.create(object_id="A", items={"crm.points": "5"}, pending=False)

    with CaptureQueriesContext(connection) as queries:
        queue_private_metadata_many({"A": {"crm.points": "5"}})

    row = MetadataWriteback.objects.get()
    assert (row.items, row.pending, row.version) == ({"crm.points": "5"}, True, 2)
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 1
    assert reads[0].endswith("FOR UPDATE") or not connection.features.has_select_for_update
