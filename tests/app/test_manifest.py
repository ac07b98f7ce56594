from saleor_crm_plugin import __version__
from saleor_crm_plugin.events.types import EventKind


def test_manifest_lists_a_webhook_per_consumed_event(client, settings):
    settings.CRM_APP_URL = "https://crm.example.com"

    response = client.get("/api/manifest")

    assert response.status_code == 200
    manifest = response.json()
    assert manifest["id"] == "saleor.crm"
    assert manifest["version"] == __version__
    assert manifest["tokenTargetUrl"] == "https://crm.example.com/api/register"
    assert manifest["permissions"] == [
        "MANAGE_USERS",
        "MANAGE_ORDERS",
        "MANAGE_PRODUCTS",
        "MANAGE_GIFT_CARD",
    ]
    events = sorted(e for hook in manifest["webhooks"] for e in hook["asyncEvents"])
    assert events == sorted(k.value.upper() for k in EventKind)
    for hook in manifest["webhooks"]:
        assert hook["targetUrl"] == "https://crm.example.com/api/webhooks/saleor"
        assert hook["isActive"] is True
        assert hook["query"].startswith("subscription ")
    assert manifest["extensions"] == []


def test_manifest_derives_urls_from_the_request_when_app_url_is_unset(client, settings):
    settings.CRM_APP_URL = ""

    manifest = client.get("/api/manifest", HTTP_HOST="crm.internal:8080").json()

    assert manifest["tokenTargetUrl"] == "http://crm.internal:8080/api/register"


def test_manifest_keys_are_those_saleor_accepted(client):
    # Saleor 3.23 accepted tests/contract/manifest-accepted.json; we use the same key names.
    import json

    from tests.captures import CONTRACT_DIR

    accepted = json.loads((CONTRACT_DIR / "manifest-accepted.json").read_text())
    ours = client.get("/api/manifest").json()
    known = set(accepted) | {"requiredSaleorVersion", "extensions"}
    assert set(ours) <= known
    assert set(ours["webhooks"][0]) == set(accepted["webhooks"][0])


def test_manifest_is_get_only(client):
    assert client.post("/api/manifest").status_code == 405
