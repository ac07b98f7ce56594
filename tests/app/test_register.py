"""The install handshake: only allow-listed Saleor instances whose token works may register."""

import json

import pytest

from saleor_crm_plugin.app import registry
from saleor_crm_plugin.app.models import SaleorInstance
from tests.captures import app_install, load_capture

INSTALL = app_install()


def post_register(client, api_url, body=None):
    headers = {k: v for k, v in INSTALL["headers"].items() if k.startswith("Saleor-")}
    headers["Saleor-Api-Url"] = api_url
    return client.post(
        "/api/register",
        data=INSTALL["raw_body"] if body is None else body,
        content_type="application/json",
        headers=headers,
    )


@pytest.fixture
def allowed(settings, fake_saleor):
    settings.CRM_ALLOWED_SALEOR_URLS = [fake_saleor.api_url]
    return fake_saleor


@pytest.mark.django_db
def test_allow_listed_saleor_registers_with_the_captured_handshake(client, allowed):
    response = post_register(client, allowed.api_url)

    assert response.status_code == 200
    assert response.json() == {"success": True}
    instance = SaleorInstance.objects.get()
    assert instance.saleor_api_url == allowed.api_url
    assert instance.app_id == "QXBwOjE="
    assert instance.domain == "127.0.0.1:8000"
    assert instance.jwks == allowed.jwks
    assert registry.app_token(instance) == INSTALL["body"]["auth_token"]
    assert INSTALL["body"]["auth_token"] not in instance.auth_token_encrypted
    # the token was checked against that Saleor before being stored
    check = next(r for r in allowed.requests if r["method"] == "POST")
    assert check["headers"]["Authorization"] == f"Bearer {INSTALL['body']['auth_token']}"
    assert "app" in check["body"]["query"]


@pytest.mark.django_db
def test_registered_instance_then_accepts_its_webhooks(client, allowed, deliver):
    post_register(client, allowed.api_url)
    capture = load_capture("ORDER_CREATED", "subscription")

    response = deliver(capture, headers={"Saleor-Api-Url": allowed.api_url})

    assert response.status_code == 200


@pytest.mark.django_db
def test_unlisted_saleor_is_refused(client, settings, fake_saleor):
    settings.CRM_ALLOWED_SALEOR_URLS = ["https://shop.example.com/graphql/"]

    response = post_register(client, fake_saleor.api_url)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert "is not allowed to install this app" in response.json()["error"]["message"]
    assert SaleorInstance.objects.count() == 0
    assert fake_saleor.requests == []  # not even contacted


@pytest.mark.django_db
def test_pattern_allow_list(client, settings, fake_saleor):
    settings.CRM_ALLOWED_SALEOR_URLS = ["http://127.0.0.1:*/graphql/"]

    assert post_register(client, fake_saleor.api_url).status_code == 200


@pytest.mark.django_db
def test_token_rejected_by_saleor_is_not_stored(client, allowed):
    allowed.respond(lambda q, v, h: {"app": None})

    response = post_register(client, allowed.api_url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "SALEOR_UNREACHABLE"
    assert SaleorInstance.objects.count() == 0


@pytest.mark.django_db
def test_unreachable_saleor_is_reported(client, settings):
    settings.CRM_ALLOWED_SALEOR_URLS = ["http://127.0.0.1:9/graphql/"]

    response = post_register(client, "http://127.0.0.1:9/graphql/")

    assert response.status_code == 400
    assert "Could not verify the installation" in response.json()["error"]["message"]
    assert SaleorInstance.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "INVALID"),
        (b"{}", 400, "REQUIRED"),
        (json.dumps({"auth_token": ""}).encode(), 400, "REQUIRED"),
    ],
)
def test_bad_bodies(client, allowed, body, status, code):
    response = post_register(client, allowed.api_url, body=body)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert SaleorInstance.objects.count() == 0


@pytest.mark.django_db
def test_missing_api_url_header(client):
    response = client.post(
        "/api/register", data=INSTALL["raw_body"], content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "REQUIRED",
        "message": "Missing Saleor-Api-Url header.",
    }


@pytest.mark.django_db
def test_reinstall_replaces_the_token(client, allowed):
    post_register(client, allowed.api_url)
    post_register(client, allowed.api_url, body=json.dumps({"auth_token": "second-token"}).encode())

    assert registry.app_token(SaleorInstance.objects.get()) == "second-token"
