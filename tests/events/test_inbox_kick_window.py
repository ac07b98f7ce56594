"""The kick's coalescing window and key expiry are remembered per settings object: they must
still follow every settings change the rest of ``crm_settings`` follows."""

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
