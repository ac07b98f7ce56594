"""The kick's coalescing window and key expiry are remembered per settings object: they must
still follow every settings change the rest of ``crm_settings`` follows."""

import pytest
from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.test import override_settings

from saleor_crm_plugin.events import inbox


def test_kick_window_follows_the_settings(settings):
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0.05
    settings.CRM_INBOX_LINGER_SECONDS = 0
    assert inbox._kick_window() == (0.05, inbox._kick_ttl()) == (0.05, 1)
    settings.CRM_INBOX_LINGER_SECONDS = 2.5
    assert inbox._kick_window() == (0.05, 4)
    with override_settings(CRM_INBOX_KICK_COALESCE_SECONDS=7):
        assert inbox._kick_window() == (7.0, 7)
    assert inbox._kick_window() == (0.05, 4)
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0
    assert inbox._kick_window()[0] == 0


def test_kick_window_is_read_again_on_setting_changed(settings):
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0.05
    settings.CRM_INBOX_LINGER_SECONDS = 0
    assert inbox._kick_window() == (0.05, 1)
    # The same settings object changed in place (the fixture's override, discarded after the
    # test), announced as Django announces changes.
    wrapped = django_settings._wrapped
    django_settings.CRM_INBOX_KICK_COALESCE_SECONDS = 3
    assert django_settings._wrapped is wrapped
    setting_changed.send(
        sender=None, setting="CRM_INBOX_KICK_COALESCE_SECONDS", value=3, enter=True
    )
    assert inbox._kick_window() == (3.0, 3)


def test_no_coalescing_sends_one_task_per_kick(settings, monkeypatch):
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 0
    monkeypatch.setattr(inbox, "_claim_kick", _refuse_claim)
    sent: list[int] = []
    from saleor_crm_plugin.tasks import ingest

    monkeypatch.setattr(ingest.process_inbox_task, "delay", lambda: sent.append(1))
    inbox.enqueue_processing()
    inbox.enqueue_processing()
    assert sent == [1, 1]


def _refuse_claim(timeout: int) -> bool:
    raise AssertionError("a kick without coalescing claimed the key")


def _kicks(monkeypatch) -> list[int]:
    kicks: list[int] = []
    monkeypatch.setattr(inbox, "enqueue_processing", lambda: kicks.append(1))
    return kicks


def _store_webhook(key: str) -> bool:
    return inbox.store_webhook(
        dedupe_key=key,
        kind="order_created",
        saleor_api_url="https://kick.example/graphql/",
        raw_body="{}",
    )


@pytest.mark.django_db
def test_webhook_kick_inside_a_transaction_waits_for_its_commit(
    monkeypatch, django_capture_on_commit_callbacks
):
    kicks = _kicks(monkeypatch)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _store_webhook("kick-atomic") is True
        assert _store_webhook("kick-atomic") is False  # a duplicate kicks nothing
    assert kicks == [] and len(callbacks) == 1
    callbacks[0]()
    assert kicks == [1]


@pytest.mark.django_db(transaction=True)
def test_webhook_kick_in_autocommit_runs_at_once(monkeypatch):
    kicks = _kicks(monkeypatch)
    assert _store_webhook("kick-autocommit") is True
    assert kicks == [1]
    assert _store_webhook("kick-autocommit") is False
    assert kicks == [1]


@pytest.mark.django_db(transaction=True)
def test_webhook_kick_under_manual_transactions_is_refused_as_on_commit_refuses(monkeypatch):
    from django.db import transaction

    kicks = _kicks(monkeypatch)
    transaction.set_autocommit(False)
    try:
        with pytest.raises(transaction.TransactionManagementError):
            _store_webhook("kick-manual")
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)
    assert kicks == []
