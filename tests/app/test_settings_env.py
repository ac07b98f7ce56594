import json
import os
import subprocess
import sys


def test_every_crm_setting_can_come_from_the_environment():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "CRM_INBOX_BATCH_SIZE": "7",
        "CRM_APP_PERMISSIONS": '["MANAGE_USERS"]',
        "CRM_APP_NAME": "Shop CRM",
    }
    code = (
        "import django, json; django.setup();"
        "from saleor_crm_plugin.conf import crm_settings as s;"
        "print(json.dumps([s.INBOX_BATCH_SIZE, s.APP_PERMISSIONS, s.APP_NAME]))"
    )
    assert json.loads(_run(code, env)) == [7, ["MANAGE_USERS"], "Shop CRM"]


def _run(code: str, env: dict[str, str]) -> str:
    """What ``code`` prints in a fresh interpreter: settings are read once, at import."""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


def test_prepared_statements_are_on_by_default_and_can_be_switched_off():
    code = (
        "import json; from saleor_crm_plugin.app import settings as s;"
        "print(json.dumps(s.DATABASES['default'].get('OPTIONS', {}).get('prepare_threshold')))"
    )

    def threshold(value: str | None) -> object:
        env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"}
        env.pop("DATABASE_PREPARE_THRESHOLD", None)
        if value is not None:
            env["DATABASE_PREPARE_THRESHOLD"] = value
        return json.loads(_run(code, env))

    assert threshold(None) == 5
    assert threshold("1") == 1
    assert threshold("off") is None
    assert threshold("") is None


def _inbox_setting(name: str, **env: str) -> float:
    """``crm_settings.<name>`` in the App's settings with only ``env`` of the inbox's own
    variables set."""
    environ = {k: v for k, v in os.environ.items() if k not in {"CACHE_URL", *env}}
    environ.pop("CRM_INBOX_KICK_COALESCE_SECONDS", None)
    environ.pop("CRM_INBOX_LINGER_SECONDS", None)
    environ.update(env, DJANGO_SETTINGS_MODULE="saleor_crm_plugin.app.settings")
    code = (
        "import django; django.setup();"
        "from saleor_crm_plugin.conf import crm_settings as s;"
        f"print(s.{name})"
    )
    return float(_run(code, environ))


def _coalesce_seconds(**env: str) -> float:
    return _inbox_setting("INBOX_KICK_COALESCE_SECONDS", **env)


def test_kicks_coalesce_by_default_only_with_a_shared_cache():
    assert _coalesce_seconds() == 0  # per-process memory cache: a worker could not clear it
    assert _coalesce_seconds(CACHE_URL="redis://127.0.0.1:6379/1") == 0.05
    assert (
        _coalesce_seconds(CACHE_URL="redis://127.0.0.1:6379/1", CRM_INBOX_KICK_COALESCE_SECONDS="0")
        == 0
    )


def test_kicked_drains_linger_by_default_only_when_kicks_coalesce():
    def linger(**env: str) -> float:
        return _inbox_setting("INBOX_LINGER_SECONDS", **env)

    redis = "redis://127.0.0.1:6379/1"
    assert linger() == 0  # no coalescing: every row sends its own kick
    assert linger(CACHE_URL=redis) == 0.5
    assert linger(CACHE_URL=redis, CRM_INBOX_KICK_COALESCE_SECONDS="0") == 0
    assert linger(CACHE_URL=redis, CRM_INBOX_LINGER_SECONDS="0.2") == 0.2
    assert linger(CACHE_URL=redis, CRM_INBOX_LINGER_SECONDS="0") == 0
