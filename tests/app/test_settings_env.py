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
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [7, ["MANAGE_USERS"], "Shop CRM"]
