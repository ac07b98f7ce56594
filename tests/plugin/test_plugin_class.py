import importlib
import importlib.metadata
import sys
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from saleor_crm_plugin.plugin_config import CONFIG_FIELDS
from tests.plugin import saleor_stub
from tests.plugin.probe import probe_calls


@pytest.fixture
def plugin_module():
    saleor_stub.install()
    try:
        yield importlib.import_module("saleor_crm_plugin.plugin")
    finally:
        saleor_stub.uninstall()


def test_importing_the_package_does_not_need_saleor():
    assert "saleor" not in sys.modules
    for name in ("saleor_crm_plugin", "saleor_crm_plugin.models", "saleor_crm_plugin.tasks"):
        importlib.import_module(name)
    assert "saleor" not in sys.modules


def test_entry_point_name_is_the_importable_app_module():
    # Saleor appends the entry point NAME to INSTALLED_APPS.
    (entry,) = [
        e
        for e in importlib.metadata.entry_points(group="saleor.plugins")
        if e.name == "saleor_crm_plugin"
    ]
    assert entry.value == "saleor_crm_plugin.plugin:CRMPlugin"
    assert importlib.util.find_spec(entry.name) is not None


def test_plugin_is_global_and_valid_for_saleor(plugin_module):
    plugin_class = plugin_module.CRMPlugin

    assert plugin_class.CONFIGURATION_PER_CHANNEL is False
    assert plugin_class.DEFAULT_ACTIVE is True
    assert plugin_class.PLUGIN_ID == "saleor-crm-plugin"
    import re

    assert re.fullmatch(r"[.0-9A-Za-z_\-]+", plugin_class.PLUGIN_ID)
    assert set(plugin_class.CONFIG_STRUCTURE) == {f.name for f in CONFIG_FIELDS}
    assert plugin_class.CONFIG_STRUCTURE["app_token"]["type"] == "Secret"
    assert plugin_class.CONFIG_STRUCTURE["loyalty_enabled"]["type"] == "Boolean"
    assert [c["name"] for c in plugin_class.DEFAULT_CONFIGURATION] == [
        f.name for f in CONFIG_FIELDS
    ]


@pytest.mark.django_db
def test_saleor_constructed_plugin_handles_recorded_calls(plugin_module):
    plugin = plugin_module.CRMPlugin(
        configuration=plugin_module.CRMPlugin.DEFAULT_CONFIGURATION, active=True
    )
    sentinel = object()

    for hook, obj, kwargs in probe_calls():
        assert getattr(plugin, hook)(obj, sentinel, **kwargs) is sentinel


def test_configuration_validation_reports_every_bad_field(plugin_module):
    config = SimpleNamespace(
        configuration=[
            {"name": "loyalty_points_per_unit", "value": "-1"},
            {"name": "loyalty_return_window_days", "value": "thirty"},
            {"name": "loyalty_channel_settings", "value": "[1, 2]"},
            {"name": "saleor_api_url", "value": "ftp://x"},
            {"name": "rfm_frequency_window_days", "value": "365"},
        ]
    )

    with pytest.raises(ValidationError) as error:
        plugin_module.CRMPlugin.validate_plugin_configuration(config)

    assert sorted(error.value.error_dict) == [
        "loyalty_channel_settings",
        "loyalty_points_per_unit",
        "loyalty_return_window_days",
        "saleor_api_url",
    ]
    assert error.value.error_dict["loyalty_return_window_days"][0].messages == [
        "Return window (days): enter a whole number, 0 or more."
    ]


def test_valid_configuration_passes(plugin_module):
    config = SimpleNamespace(configuration=plugin_module.CRMPlugin.DEFAULT_CONFIGURATION)
    plugin_module.CRMPlugin.validate_plugin_configuration(config)


def test_plugin_http_health(plugin_module, rf):
    plugin = plugin_module.CRMPlugin(configuration=[], active=True)

    response = plugin.webhook(rf.get("/plugins/global/saleor-crm-plugin/healthz"), "/healthz", None)

    assert response.status_code == 200
    assert plugin.webhook(rf.get("/x"), "/unknown", "previous") == "previous"
