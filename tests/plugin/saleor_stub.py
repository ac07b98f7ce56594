"""The two names ``plugin.py`` imports from Saleor, for importing it where Saleor cannot be
installed (Saleor is not on PyPI). Constants and the constructor signature are copied from
saleor/plugins/base_plugin.py at 3.23.28; no behaviour of Saleor is imitated beyond storing
what the manager passes."""

from __future__ import annotations

import sys
import types
from typing import Any


class ConfigurationTypeField:
    STRING = "String"
    MULTILINE = "Multiline"
    BOOLEAN = "Boolean"
    SECRET = "Secret"
    SECRET_MULTILINE = "SecretMultiline"
    PASSWORD = "Password"
    OUTPUT = "OUTPUT"


class BasePlugin:
    PLUGIN_ID = ""
    PLUGIN_NAME = ""
    PLUGIN_DESCRIPTION = ""
    CONFIG_STRUCTURE = None
    CONFIGURATION_PER_CHANNEL = True
    DEFAULT_CONFIGURATION: list[dict[str, Any]] = []
    DEFAULT_ACTIVE = False
    HIDDEN = False

    def __init__(
        self,
        *,
        configuration: list[dict[str, Any]],
        active: bool,
        channel: Any = None,
        requestor_getter: Any = None,
        db_config: Any = None,
        allow_replica: bool = True,
    ) -> None:
        self.configuration = configuration
        self.active = active
        self.channel = channel


def install() -> None:
    saleor = types.ModuleType("saleor")
    plugins = types.ModuleType("saleor.plugins")
    base_plugin = types.ModuleType("saleor.plugins.base_plugin")
    base_plugin.BasePlugin = BasePlugin  # type: ignore[attr-defined]
    base_plugin.ConfigurationTypeField = ConfigurationTypeField  # type: ignore[attr-defined]
    saleor.plugins = plugins  # type: ignore[attr-defined]
    plugins.base_plugin = base_plugin  # type: ignore[attr-defined]
    sys.modules.update(
        {"saleor": saleor, "saleor.plugins": plugins, "saleor.plugins.base_plugin": base_plugin}
    )


def uninstall() -> None:
    for name in (
        "saleor.plugins.base_plugin",
        "saleor.plugins",
        "saleor",
        "saleor_crm_plugin.plugin",
    ):
        sys.modules.pop(name, None)
