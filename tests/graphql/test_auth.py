"""Saleor credentials: access, thirdparty, staff and app tokens, verified for real."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.core.auth import AuthenticationError, authenticate
from tests.graphql.conftest import (
    KID,
    jwks_of,
    make_customer,
    staff_answer,
    user_gid,
)

ME = "{ me { email } }"
STAFF_ID = user_gid(900)


def _auth(token: str, **headers: str) -> Any:
    return authenticate({"Authorization": f"Bearer {token}", **headers})


def test_no_credentials_is_anonymous(db):
    assert authenticate({}).kind == "anonymous"


def test_customer_access_token(saleor, mint):
    requester = _auth(mint(user_gid(1), email="a@example.com"))
    assert (requester.kind, requester.user_id, requester.email) == (
        "customer",
        user_gid(1),
        "a@example.com",
    )
    assert requester.permissions == frozenset()
    assert saleor.requests == []  # a customer token costs no call to Saleor


def test_authorization_bearer_header_from_app_bridge(saleor, mint):
    requester = authenticate({"Authorization-Bearer": mint(user_gid(1))})
    assert requester.user_id == user_gid(1)


def test_expired_token_is_refused(saleor, mint):
    with pytest.raises(AuthenticationError) as exc:
        _auth(mint(user_gid(1), expires_in=-10))
    assert exc.value.code == "ExpiredSignatureError"


def test_token_signed_by_another_key_is_refused(saleor, mint):
    with pytest.raises(AuthenticationError, match="Unknown signing key"):
        _auth(mint(user_gid(1), kid="attacker-key"))


def test_forged_signature_with_known_kid_is_refused(saleor, mint):
    token = mint(user_gid(1))
    header, _payload, signature = token.split(".")
    forged = mint(user_gid(2)).split(".")[1]
    with pytest.raises(AuthenticationError, match="Invalid token"):
        _auth(f"{header}.{forged}.{signature}")


def test_unregistered_issuer_is_refused(saleor, mint):
    with pytest.raises(AuthenticationError, match="not issued by a trusted Saleor"):
        _auth(mint(user_gid(1), issuer="https://evil.example.com/graphql/"))


@pytest.mark.parametrize("token_type", ["refresh", "email-change", "set-password"])
def test_other_token_types_are_refused(saleor, mint, token_type):
    with pytest.raises(AuthenticationError, match="not accepted"):
        _auth(mint(user_gid(1), token_type=token_type))


def test_hs256_token_is_refused(saleor):
    import jwt

    token = jwt.encode(
        {"iss": saleor.api_url, "type": "access", "user_id": "x", "exp": 2**31}, "k" * 32
    )
    with pytest.raises(AuthenticationError, match="RS256"):
        _auth(token)


def test_rotated_key_is_fetched_once_from_the_jwks(saleor, mint):
    saleor.jwks = jwks_of(KID, "rotated-key")
    requester = _auth(mint(user_gid(1), kid="rotated-key"))
    assert requester.user_id == user_gid(1)
    assert [r["path"] for r in saleor.requests] == ["/.well-known/jwks.json"]
    assert "rotated-key" in str(SaleorInstance.objects.get().jwks)


def test_thirdparty_token_uses_its_permissions(saleor, mint):
    requester = _auth(mint.thirdparty(STAFF_ID, ["MANAGE_USERS", "MANAGE_ORDERS"]))
    assert requester.kind == "staff"
    assert requester.permissions == {"MANAGE_USERS", "MANAGE_ORDERS"}
    assert saleor.requests == []


def test_thirdparty_token_of_another_app_is_refused(saleor, mint):
    with pytest.raises(AuthenticationError, match="another app"):
        _auth(mint.thirdparty(STAFF_ID, ["MANAGE_USERS"], app="QXBwOjk5"))


def test_staff_access_token_asks_saleor_once(saleor, mint):
    saleor.respond(staff_answer(STAFF_ID, ["MANAGE_USERS"]))
    token = mint(STAFF_ID, is_staff=True)
    first = _auth(token)
    second = _auth(token)
    assert first.permissions == second.permissions == {"MANAGE_USERS"}
    posts = [r for r in saleor.requests if r["method"] == "POST"]
    assert len(posts) == 1
    assert posts[0]["headers"]["Authorization"] == f"Bearer {token}"


def test_staff_token_refused_by_saleor_is_refused(saleor, mint):
    saleor.respond(lambda q, v, h: {"me": None, "__errors__": [{"message": "Invalid token"}]})
    with pytest.raises(AuthenticationError, match="Saleor refused"):
        _auth(mint(STAFF_ID, is_staff=True))


def test_staff_permissions_empty_when_saleor_is_down(saleor, mint):
    saleor.respond(lambda q, v, h: (502, {}))
    requester = _auth(mint(STAFF_ID, is_staff=True))
    assert requester.kind == "staff" and requester.permissions == frozenset()


def _app_answer(app_id: str, permissions: list[str]) -> Any:
    def root(query: str, variables: dict[str, Any], headers: dict[str, str]) -> Any:
        assert "CrmAppTokenCheck" in query
        return {"app": {"id": app_id, "permissions": [{"code": p, "name": p} for p in permissions]}}

    return root


def test_app_token_is_checked_once_and_cached(saleor):
    saleor.respond(_app_answer("QXBwOjc=", ["MANAGE_ORDERS"]))
    first = _auth("opaque-app-token", **{"Saleor-Api-Url": saleor.api_url})
    second = _auth("opaque-app-token", **{"Saleor-Api-Url": saleor.api_url})
    assert first.kind == "app" and first.app_id == "QXBwOjc="
    assert second.permissions == {"MANAGE_ORDERS"}
    assert len([r for r in saleor.requests if r["method"] == "POST"]) == 1


def test_app_token_without_header_uses_the_only_instance(saleor):
    saleor.respond(_app_answer("QXBwOjc=", []))
    assert _auth("opaque-app-token").app_id == "QXBwOjc="


def test_unknown_app_token_is_refused_and_the_refusal_cached(saleor):
    saleor.respond(lambda q, v, h: {"app": None, "__errors__": [{"message": "denied"}]})
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="does not recognise"):
            _auth("bad-token")
    assert len([r for r in saleor.requests if r["method"] == "POST"]) == 1


def test_plugin_mode_trusts_the_configured_saleor(db, mint):
    from tests.conftest import FakeSaleor

    server = FakeSaleor()
    server.jwks = jwks_of(KID)
    try:
        with override_settings(CRM_SALEOR_API_URL=server.api_url):
            requester = _auth(mint(user_gid(3), issuer=server.api_url))
        assert requester.user_id == user_gid(3)
        assert SaleorInstance.objects.filter(saleor_api_url=server.api_url).exists()
    finally:
        server.close()


# -- over HTTP --------------------------------------------------------------------------------


def test_expired_token_gets_401_with_saleor_error_code(saleor, mint, gql):
    status, body = gql(ME, token=mint(user_gid(1), expires_in=-5))
    assert status == 401
    assert body["errors"][0]["extensions"]["exception"]["code"] == "ExpiredSignatureError"


def test_garbage_token_gets_401(saleor, gql):
    status, body = gql(ME, token="a.b.c")
    assert status == 401
    assert body["errors"][0]["extensions"]["exception"]["code"] == "InvalidTokenError"


def test_valid_token_reaches_the_resolver(saleor, mint, gql):
    make_customer(1)
    status, body = gql(ME, token=mint(user_gid(1)))
    assert status == 200
    assert body == {"data": {"me": {"email": "customer1@example.com"}}}


def test_documents_sent_to_saleor_are_registered_and_valid():
    from saleor_crm_plugin.core.auth import APP_TOKEN_QUERY, STAFF_PERMISSIONS_QUERY
    from saleor_crm_plugin.core.saleor_api import DOCUMENTS
    from tests.captures import validate_against_saleor

    assert DOCUMENTS["CrmStaffPermissions"] == STAFF_PERMISSIONS_QUERY
    assert DOCUMENTS["CrmAppTokenCheck"] == APP_TOKEN_QUERY
    assert validate_against_saleor(STAFF_PERMISSIONS_QUERY) == []
    assert validate_against_saleor(APP_TOKEN_QUERY) == []


def test_made_up_issuers_cannot_grow_the_instance_cache(saleor, mint, monkeypatch):
    from saleor_crm_plugin.app.registry import instance_cache

    monkeypatch.setattr(instance_cache, "MAX_ENTRIES", 5)
    for n in range(20):
        with pytest.raises(AuthenticationError):
            _auth(mint(user_gid(1), issuer=f"https://evil{n}.example.com/graphql/"))
    assert len(instance_cache._entries) <= 5
    assert _auth(mint(user_gid(1))).user_id == user_gid(1)


def test_app_token_while_saleor_is_down_is_503_and_not_cached(saleor, gql):
    saleor.respond(lambda q, v, h: (502, {}))
    for _ in range(2):
        status, body = gql("{ me { email } }", token="opaque-app-token")
        assert status == 503
        assert body["errors"][0]["extensions"]["exception"]["code"] == "SaleorUnavailable"
    # Not cached: each request asked again, and a recovered Saleor is believed at once.
    assert len([r for r in saleor.requests if r["method"] == "POST"]) == 2
    saleor.respond(_app_answer("QXBwOjc=", []))
    assert _auth("opaque-app-token").app_id == "QXBwOjc="


# -- verified-token cache -------------------------------------------------------------------


def test_a_verified_token_is_not_verified_again(saleor, mint, monkeypatch):
    import jwt as pyjwt

    token = mint(user_gid(1))
    first = _auth(token)
    calls = []
    real_decode = pyjwt.decode
    monkeypatch.setattr(pyjwt, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    assert _auth(token) == first
    assert calls == []


def test_the_cache_ends_with_the_key_that_verified_the_token(saleor, mint):
    from saleor_crm_plugin.app.registry import instance_cache

    token = mint(user_gid(1))
    _auth(token)
    # The Saleor is unregistered: the cached verdict must not outlive its keys.
    SaleorInstance.objects.all().delete()
    instance_cache.clear()
    with pytest.raises(AuthenticationError, match="not issued by a trusted Saleor"):
        _auth(token)


@override_settings(CRM_GRAPHQL_JWT_LEEWAY=0)
def test_the_cache_never_outlives_the_token(saleor, mint):
    import time

    token = mint(user_gid(1), expires_in=2)
    _auth(token)
    time.sleep(2.2)
    with pytest.raises(AuthenticationError) as exc:
        _auth(token)
    assert exc.value.code == "ExpiredSignatureError"
