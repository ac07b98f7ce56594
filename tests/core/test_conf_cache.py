"""``crm_settings`` remembers what it read from Django's settings until they change."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.test import override_settings

from saleor_crm_plugin.conf import CRMSettings, crm_settings


def _reads(monkeypatch: Any) -> list[str]:
    """The names the settings object is asked for, from now on."""
    asked: list[str] = []
    wrapped = type(django_settings._wrapped)
    original = wrapped.__getattribute__

    def recording(self: Any, name: str) -> Any:
        if name.startswith("CRM_"):
            asked.append(name)
        return original(self, name)

    monkeypatch.setattr(wrapped, "__getattribute__", recording)
    return asked


def test_a_value_is_read_once(monkeypatch):
    conf = CRMSettings()
    conf.forget()
    asked = _reads(monkeypatch)
    first = conf.INBOX_BATCH_SIZE
    assert first == conf.INBOX_BATCH_SIZE
    assert first == conf.INBOX_BATCH_SIZE
    assert asked.count("CRM_INBOX_BATCH_SIZE") <= 1  # once if set, never if defaulted


def test_override_settings_is_seen_and_undone():
    before = crm_settings.INBOX_BATCH_SIZE
    with override_settings(CRM_INBOX_BATCH_SIZE=before + 7):
        assert before + 7 == crm_settings.INBOX_BATCH_SIZE
        with override_settings(CRM_INBOX_BATCH_SIZE=3):
            assert crm_settings.INBOX_BATCH_SIZE == 3
        assert before + 7 == crm_settings.INBOX_BATCH_SIZE
    assert before == crm_settings.INBOX_BATCH_SIZE


def test_pytest_django_settings_fixture_is_seen(settings):
    settings.CRM_INBOX_BATCH_SIZE = 11
    assert crm_settings.INBOX_BATCH_SIZE == 11
    del settings.CRM_INBOX_BATCH_SIZE
    assert crm_settings.INBOX_BATCH_SIZE == CRMSettings().INBOX_BATCH_SIZE


def test_setting_changed_forgets():
    conf = CRMSettings()
    setting_changed.connect(conf.forget)
    try:
        real = conf.INBOX_BATCH_SIZE
        conf._values["INBOX_BATCH_SIZE"] = real + 12345  # as if the setting had changed since
        assert real + 12345 == conf.INBOX_BATCH_SIZE
        setting_changed.send(sender=None, setting="CRM_INBOX_BATCH_SIZE", value=None, enter=True)
        assert real == conf.INBOX_BATCH_SIZE
    finally:
        setting_changed.disconnect(conf.forget)


def test_a_derived_value_is_computed_once_per_settings():
    conf = CRMSettings()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert conf.derived("n", compute) == conf.derived("n", compute) == 1
    with override_settings(CRM_INBOX_BATCH_SIZE=7):
        assert conf.derived("n", compute) == 2  # another settings object
    assert conf.derived("n", compute) == 3
    conf.forget()
    assert conf.derived("n", compute) == 4
    assert conf.derived("n", compute) == 4
