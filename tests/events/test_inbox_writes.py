"""What the inbox writes costs PostgreSQL: lean indexes.

The inbox's rare queries still find their rows through the partial indexes of migration 0016.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Q

from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's commit and index settings"
)


def index_scans(queryset) -> str:
    """The plan of ``queryset`` with sequential scans priced out: which indexes can serve it."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        try:
            return queryset.explain()
        finally:
            cursor.execute("SET LOCAL enable_seqscan = on")


@pytest.mark.django_db
def test_the_rare_queries_are_served_by_the_partial_indexes():
    """A query the partial indexes cannot prove they cover (an empty subject, a status they
    leave out) would fall back to reading the whole inbox: these are the ones we run."""
    redact = InboxEvent.objects.filter(
        Q(pk__in=[]) | Q(subject_user_id="VXNlcjo0Ng==") | Q(subject_email_hash="ab" * 32)
    ).exclude(status=InboxStatus.PENDING)
    plan = index_scans(redact)
    assert "crm_inbox_subj_user_set_idx" in plan and "crm_inbox_subj_email_set_idx" in plan

    assert "crm_inbox_unresolved_idx" in index_scans(
        InboxEvent.objects.filter(status=InboxStatus.FAILED)
    )
    assert "crm_inbox_pending_idx" in index_scans(
        InboxEvent.objects.filter(status=InboxStatus.PENDING)
    )
    from datetime import timedelta

    from django.utils import timezone

    prune = InboxEvent.objects.filter(
        status__in=[InboxStatus.DONE, InboxStatus.INVALID],
        received_at__lt=timezone.now() - timedelta(days=30),
    )
    assert "crm_inbox_received_brin" in index_scans(prune)


@pytest.mark.django_db
def test_a_subject_set_by_the_worker_is_found_for_erasure():
    """The acknowledgement's raw row has both subject columns empty (in neither partial
    index); once the worker fills them, erasure finds the row through them."""
    inbox.store_webhook(
        dedupe_key="raw-1",
        kind="order_created",
        saleor_api_url="https://x/",
        raw_body="{}",
        kick=False,
    )
    row = InboxEvent.objects.get()
    assert (row.subject_user_id, row.subject_email_hash) == ("", "")
    assert inbox.redact_for_subject(user_id="VXNlcjo0Ng==", email_hash="") == 0
    InboxEvent.objects.filter(pk=row.pk).update(
        subject_user_id="VXNlcjo0Ng==", status=InboxStatus.DONE
    )
    assert inbox.redact_for_subject(user_id="VXNlcjo0Ng==", email_hash="") == 1
    assert InboxEvent.objects.get().payload == inbox.REDACTED_PAYLOAD
