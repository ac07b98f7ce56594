"""``fastpath._check_host`` (accepted ``Host`` headers remembered per settings object)
against ``request.get_host()`` itself, over generated requests and settings changes."""

from __future__ import annotations

import random

import pytest
from django.core.exceptions import DisallowedHost
from django.test import RequestFactory, override_settings

from saleor_crm_plugin.app import fastpath

HOSTS = [
    "crm.example.com",
    "crm.example.com:8000",
    "evil.example.net",
    "127.0.0.1:8000",
    "localhost",
    "[::1]:8000",
    "CRM.EXAMPLE.COM",
    "bad host",
    "",
    "sub.crm.example.com",
]
ALLOWED = [
    ["crm.example.com"],
    [".example.com"],
    ["*"],
    [],
    ["127.0.0.1", "localhost"],
]


def _request(rng: random.Random):
    extra = {}
    if rng.random() < 0.9:
        extra["HTTP_HOST"] = rng.choice(HOSTS)
    if rng.random() < 0.2:
        extra["HTTP_X_FORWARDED_HOST"] = rng.choice(HOSTS)
    request = RequestFactory().post("/api/webhooks/saleor", **extra)
    if "HTTP_HOST" not in extra:
        request.META.pop("HTTP_HOST", None)
        request.META["SERVER_NAME"] = rng.choice(["crm.example.com", "evil.example.net"])
    return request


def _outcome(check, request) -> str:
    try:
        answer = check(request)
    except DisallowedHost as exc:
        return f"refused: {exc}"
    return f"accepted: {answer if check is not fastpath._check_host else ''}"


@pytest.mark.parametrize("seed", range(6))
def test_check_host_answers_as_get_host(seed):
    rng = random.Random(seed)
    fastpath._forget_hosts()
    for _ in range(8):
        settings_case = {
            "ALLOWED_HOSTS": rng.choice(ALLOWED),
            "DEBUG": rng.random() < 0.3,
            "USE_X_FORWARDED_HOST": rng.random() < 0.5,
        }
        with override_settings(**settings_case):
            for _ in range(25):
                request = _request(rng)
                expected = _outcome(lambda r: r.get_host(), request)
                got = _outcome(fastpath._check_host, request)
                assert got.split(":")[0] == expected.split(":")[0], (settings_case, request.META)
                if got.startswith("refused"):
                    assert got == expected


def test_accepted_hosts_are_bounded_and_forgotten_with_the_settings():
    fastpath._forget_hosts()
    with override_settings(ALLOWED_HOSTS=["*"]):
        for i in range(fastpath._ACCEPTED_HOSTS_MAX * 2):
            request = RequestFactory().post("/", HTTP_HOST=f"h{i}.example.com")
            fastpath._check_host(request)
            assert len(fastpath._accepted_hosts) <= fastpath._ACCEPTED_HOSTS_MAX
    request = RequestFactory().post("/", HTTP_HOST="h127.example.com")
    with override_settings(ALLOWED_HOSTS=["other.example.com"]), pytest.raises(DisallowedHost):
        fastpath._check_host(request)


def test_a_remembered_host_is_refused_once_the_settings_change_in_place():
    """Settings changed through ``setting_changed`` (pytest-django's ``settings`` fixture,
    ``override_settings``) are seen at once."""
    fastpath._forget_hosts()
    request = RequestFactory().post("/", HTTP_HOST="crm.example.com")
    with override_settings(ALLOWED_HOSTS=["crm.example.com"]):
        fastpath._check_host(request)
        fastpath._check_host(request)
        with override_settings(ALLOWED_HOSTS=["x.example.com"]), pytest.raises(DisallowedHost):
            fastpath._check_host(request)
        fastpath._check_host(request)
