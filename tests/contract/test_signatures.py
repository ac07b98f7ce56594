"""Every captured signature verifies; anything else is refused with 401 and stores nothing."""

import json

import pytest

from saleor_crm_plugin.app import registry
from saleor_crm_plugin.app.jws import SignatureError
from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.events.models import InboxEvent
from tests.captures import CAPTURED_API_URL, all_captures, load_capture

ALL = all_captures()


@pytest.mark.parametrize("capture", ALL, ids=lambda c: c.name)
def test_every_captured_signature_verifies(saleor_instance, capture):
    registry.verify_webhook_signature(capture.api_url, capture.signature, capture.raw_body)


@pytest.mark.parametrize("capture", ALL, ids=lambda c: c.name)
def test_every_captured_delivery_is_accepted(saleor_instance, deliver, capture):
    response = deliver(capture)

    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    assert InboxEvent.objects.count() == 1


@pytest.mark.parametrize("position", [0, 57, -2])
def test_tampered_byte_is_rejected_and_nothing_stored(saleor_instance, deliver, position):
    capture = load_capture("ORDER_FULLY_PAID", "subscription")
    body = bytearray(capture.raw_body)
    body[position] = ord("X") if body[position] != ord("X") else ord("Y")

    response = deliver(capture, body=bytes(body))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "SIGNATURE_INVALID"
    assert InboxEvent.objects.count() == 0


def test_signature_of_another_payload_is_rejected(saleor_instance, deliver):
    paid = load_capture("ORDER_FULLY_PAID", "subscription")
    created = load_capture("ORDER_CREATED", "subscription")

    response = deliver(paid, headers={"Saleor-Signature": created.signature})

    assert response.status_code == 401
    assert InboxEvent.objects.count() == 0


def test_missing_signature_header_is_rejected(saleor_instance, deliver):
    capture = load_capture("CUSTOMER_CREATED", "subscription")

    response = deliver(capture, drop=("Saleor-Signature",))

    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "SIGNATURE_MISSING",
        "message": "Missing Saleor-Signature header.",
    }
    assert InboxEvent.objects.count() == 0


def test_missing_api_url_is_rejected(saleor_instance, deliver):
    response = deliver(load_capture("CUSTOMER_CREATED", "subscription"), drop=("Saleor-Api-Url",))

    assert response.status_code == 401
    assert InboxEvent.objects.count() == 0


def test_unregistered_saleor_is_rejected_even_with_a_valid_signature(db, deliver):
    # The captured JWKS is known, but no instance is registered under this URL.
    response = deliver(load_capture("ORDER_CREATED", "subscription"))

    assert response.status_code == 401
    assert "not a registered Saleor instance" in response.json()["error"]["message"]
    assert InboxEvent.objects.count() == 0


def test_other_saleor_url_cannot_borrow_a_registered_instance(saleor_instance, deliver):
    response = deliver(
        load_capture("ORDER_CREATED", "subscription"),
        headers={"Saleor-Api-Url": "https://attacker.example.com/graphql/"},
    )

    assert response.status_code == 401
    assert InboxEvent.objects.count() == 0


def test_unknown_kid_is_rejected(saleor_instance, deliver, settings):
    # given a JWKS whose only key has another kid, and a refresh that finds nothing new
    other = json.loads(json.dumps(saleor_instance.jwks))
    other["keys"][0]["kid"] = "some-other-kid"
    SaleorInstance.objects.filter(pk=saleor_instance.pk).update(jwks=other)
    settings.CRM_JWKS_REFRESH_INTERVAL = 3600
    registry.instance_cache.may_refresh(CAPTURED_API_URL)  # a refresh just happened

    response = deliver(load_capture("ORDER_CREATED", "subscription"))

    assert response.status_code == 401
    assert "Unknown signing key id" in response.json()["error"]["message"]
    assert InboxEvent.objects.count() == 0


def test_malformed_signature_is_rejected(saleor_instance, deliver):
    response = deliver(
        load_capture("ORDER_CREATED", "subscription"), headers={"Saleor-Signature": "not-a-jws"}
    )

    assert response.status_code == 401
    assert InboxEvent.objects.count() == 0


def test_unknown_kid_refreshes_the_jwks_once(db, fake_saleor, deliver):
    # given an instance whose stored JWKS predates a key rotation
    SaleorInstance.objects.create(saleor_api_url=fake_saleor.api_url, jwks={"keys": []})
    capture = load_capture("ORDER_CREATED", "subscription")

    # when a delivery signed with the new key arrives
    response = deliver(capture, headers={"Saleor-Api-Url": fake_saleor.api_url})

    # then the JWKS is fetched from that Saleor and the delivery accepted
    assert response.status_code == 200
    assert [r["path"] for r in fake_saleor.requests] == ["/.well-known/jwks.json"]
    assert SaleorInstance.objects.get().jwks == fake_saleor.jwks
    # and a second delivery with the now-known kid needs no fetch
    deliver(
        load_capture("ORDER_CONFIRMED", "subscription"),
        headers={"Saleor-Api-Url": fake_saleor.api_url},
    )
    assert len(fake_saleor.requests) == 1


def test_refresh_is_rate_limited(db, fake_saleor, deliver):
    SaleorInstance.objects.create(saleor_api_url=fake_saleor.api_url, jwks={"keys": []})
    fake_saleor.jwks = {"keys": []}  # Saleor does not know the kid either
    capture = load_capture("ORDER_CREATED", "subscription")

    first = deliver(capture, headers={"Saleor-Api-Url": fake_saleor.api_url})
    second = deliver(capture, headers={"Saleor-Api-Url": fake_saleor.api_url})

    assert (first.status_code, second.status_code) == (401, 401)
    assert len(fake_saleor.requests) == 1


def test_verify_raises_signature_error_for_wrong_body(saleor_instance):
    capture = load_capture("CUSTOMER_UPDATED", "legacy")

    with pytest.raises(SignatureError):
        registry.verify_webhook_signature(
            capture.api_url, capture.signature, capture.raw_body + b" "
        )
