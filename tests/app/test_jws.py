"""The ack's shortcuts in ``app/jws.py`` and ``app/registry.py`` against the library code they
replace: same bytes, same errors."""

from __future__ import annotations

import base64
import binascii
import os

import pytest
from jwt.utils import base64url_decode

from saleor_crm_plugin.app import registry
from saleor_crm_plugin.app.jws import _b64url_decode
from saleor_crm_plugin.core.saleor_api import normalize_api_url


def _outcome(decode, value: bytes) -> tuple[str, object]:
    try:
        return "ok", decode(value)
    except (ValueError, TypeError, binascii.Error) as exc:
        return type(exc).__name__, str(exc)


SEGMENTS = [
    b"",
    b"A",
    b"AB",
    b"ABC",
    b"ABCD",
    b"-_-_",
    b"ab+/",
    b"ab==",
    b"a=b=",
    b"ab=",
    b"a b c d",
    b"!!!!",
    b"\xff\xfe",
    b"QUJD.REVG",
    *(base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=") for n in range(0, 300, 7)),
    *(base64.urlsafe_b64encode(os.urandom(n)) for n in (1, 2, 3, 256)),
]


@pytest.mark.parametrize("segment", SEGMENTS)
def test_signature_segments_decode_as_pyjwt_decodes_them(segment: bytes) -> None:
    assert _outcome(_b64url_decode, segment) == _outcome(base64url_decode, segment)


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/graphql/",
        "HTTPS://Shop.Example.com:8000/graphql/",
        "  http://x/ ",
        "http://x",
        "ftp://x/graphql/",
        "not a url",
        "",
    ],
)
def test_the_remembered_header_normalisation_is_normalize_api_url(url: str) -> None:
    for _ in range(2):  # the second call is answered by the cache
        assert _outcome(registry._normalized_header, url) == _outcome(normalize_api_url, url)
