# ruff: noqa: F811  (pytest fixtures imported from other test modules, used as arguments)
"""The inline chain (``app/fastpath.py``) answers the webhook's and GraphQL's POSTs exactly as
Django's ``WSGIHandler`` does: generated mixes of requests under several settings, sent to
both, must give the same status lines, header lists (names, values, order), bodies, signals,
log records and inbox rows. Every case checks that the App's handler did take the inline
chain, so none can pass by falling back to Django's."""

from __future__ import annotations

import io
import json
import logging
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse

from saleor_crm_plugin.app import fastpath, views
from saleor_crm_plugin.app.handler import GRAPHQL_PATH, AppWSGIHandler
from saleor_crm_plugin.demo.signing import DemoSigner
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent
from tests.app.test_wsgi_handler import (  # noqa: F401  (fixtures)
    BODY,
    Outcome,
    delivery,
    environ,
    registered,
    run,
    sent_signals,
    signer,
)
from tests.captures import CAPTURED_API_URL
from tests.graphql.conftest import (  # noqa: F401  (fixtures)
    make_customer,
    make_order,
    make_stats,
    mint,
    saleor,
    user_gid,
)

Request = Callable[[], dict[str, Any]]


def inline_handler() -> tuple[AppWSGIHandler, list[str]]:
    """The App's handler with its inline chains counted (``FastPost.chain``, which only the
    inline path calls)."""
    handler = AppWSGIHandler()
    assert handler._fast_webhook is not None and handler._fast_graphql is not None
    used: list[str] = []
    for name in ("_webhook_chain", "_graphql_chain"):
        chain = getattr(handler, name)

        def counted(request: Any, chain: Any = chain, name: str = name) -> Any:
            used.append(name)
            return chain(request)

        setattr(handler, name, counted)
    return handler, used


def compare(
    requests: list[Request], sent_signals: list[str], caplog: pytest.LogCaptureFixture
) -> Outcome:
    caplog.set_level(logging.INFO)
    inline, used = inline_handler()
    django = run(WSGIHandler(), requests, sent_signals, caplog)
    ours = run(inline, requests, sent_signals, caplog)
    assert ours.answers == django.answers
    assert ours == django
    assert len(used) == len(requests)
    return ours


# -- generated webhook deliveries --------------------------------------------------------------


def _body(n: int) -> bytes:
    # Distinct bodies (distinct dedupe keys); the ack never parses them.
    return BODY + b" " * n


def _make_deliveries(signer: DemoSigner, rng: random.Random, count: int) -> list[Request]:
    """A mix of what Saleor (or anyone) may POST to the webhook."""
    made: list[Request] = []
    goods: list[Request] = []
    kinds = [
        "good",
        "good",
        "duplicate",
        "bad-signature",
        "no-signature",
        "no-api-url",
        "unknown-instance",
        "unknown-event",
        "invalid-utf8",
        "nul",
        "bad-host",
        "user-agent",
        "lowercase-method",
    ]
    for n in range(count):
        kind = rng.choice(kinds)
        body = _body(n)
        if kind == "duplicate" and made:
            # mostly a stored delivery sent again, sometimes anything sent again
            again = goods if goods and rng.random() < 0.8 else made
            made.append(again[rng.randrange(len(again))])
            continue
        overrides: dict[str, Any] = {}
        if kind == "bad-signature":
            overrides["saleor_signature"] = "e30." + "".join(
                rng.choice("abcdefXYZ0123456789") for _ in range(rng.randrange(0, 40))
            )
        elif kind == "no-signature":
            overrides["saleor_signature"] = None
        elif kind == "no-api-url":
            overrides["saleor_api_url"] = None
        elif kind == "unknown-instance":
            overrides["saleor_api_url"] = "https://other.example/graphql/"
        elif kind == "unknown-event":
            overrides["saleor_event"] = rng.choice(["PRODUCT_CREATED", "NOPE", "", "order_created"])
        elif kind == "invalid-utf8":
            body = b'{"a": "\xff\xfe' + body[-5:] + b'"}'
        elif kind == "nul":
            body = b'{"a": "\x00"}' + body[-n:]
        env = delivery(signer, body, **overrides)
        if kind == "bad-host":
            env["HTTP_HOST"] = rng.choice(["evil.example", "bad host", "127.0.0.1:8000:1"])
        elif kind == "user-agent":
            env["HTTP_USER_AGENT"] = rng.choice(["Saleor/3.23", "EvilBot/1.0", "curl/8"])
        elif kind == "lowercase-method":
            env["REQUEST_METHOD"] = "post"
        data = env["wsgi.input"].getvalue()

        def make(env: dict[str, Any] = env, data: bytes = data) -> dict[str, Any]:
            return {**env, "wsgi.input": io.BytesIO(data)}

        made.append(make)
        if kind == "good":
            goods.append(make)
    return made


SETTINGS_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "hsts-https": {
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "https": True,
    },
    "hsts-http": {"SECURE_HSTS_SECONDS": 60},
    "hsts-proxy-header": {
        "SECURE_HSTS_SECONDS": 60,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "forwarded": True,
    },
    "no-security-headers": {
        "SECURE_CONTENT_TYPE_NOSNIFF": False,
        "SECURE_REFERRER_POLICY": None,
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": None,
    },
    "other-security-values": {
        "SECURE_REFERRER_POLICY": ["no-referrer", " strict-origin"],
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": "same-origin-allow-popups",
    },
    "allowed-hosts": {"ALLOWED_HOSTS": ["crm.example", "127.0.0.1"]},
    "user-agents": {"DISALLOWED_USER_AGENTS": [re.compile(r"bot", re.I)]},
    "upload-limit": {"DATA_UPLOAD_MAX_MEMORY_SIZE": len(BODY) + 20},
    "script-name": {"FORCE_SCRIPT_NAME": "/crm"},
    "atomic-requests": {"atomic": True},
}


@pytest.mark.parametrize("case", sorted(SETTINGS_CASES))
@pytest.mark.parametrize("seed", [1, 2])
def test_generated_deliveries(
    registered, signer, sent_signals, caplog, settings, monkeypatch, case, seed
):
    options = dict(SETTINGS_CASES[case])
    https = options.pop("https", False)
    forwarded = options.pop("forwarded", False)
    if options.pop("atomic", False):
        monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    for name, value in options.items():
        setattr(settings, name, value)
    rng = random.Random(f"{case}-{seed}")
    requests = _make_deliveries(signer, rng, 24)

    def dressed(make: Request) -> Request:
        def again() -> dict[str, Any]:
            env = make()
            if https:
                env["wsgi.url_scheme"] = "https"
            if forwarded:
                env["HTTP_X_FORWARDED_PROTO"] = rng.choice(["https", "http"])
            return env

        return again

    # the same random choices for both handlers: the forwarded header is drawn per request
    fixed = []
    for make in map(dressed, requests):
        env = make()
        data = env["wsgi.input"].getvalue()
        fixed.append(lambda env=env, data=data: {**env, "wsgi.input": io.BytesIO(data)})
    outcome = compare(fixed, sent_signals, caplog)

    statuses = {status for status, _, _ in outcome.answers}
    assert "200 OK" in statuses


def test_every_answer_of_the_ack_is_covered(registered, signer, sent_signals, caplog, settings):
    """The generated mix reaches each answer: stored, duplicate, refused, ignored, invalid,
    bad host, forbidden user agent, too large."""
    settings.DISALLOWED_USER_AGENTS = [re.compile("Evil")]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(BODY) + 60  # the last 20 bodies are too large
    requests = _make_deliveries(signer, random.Random(7), 80)
    outcome = compare(requests, sent_signals, caplog)
    bodies = b" ".join(body for _, _, body in outcome.answers)
    statuses = {status for status, _, _ in outcome.answers}
    assert {"200 OK", "401 Unauthorized", "400 Bad Request", "403 Forbidden"} <= statuses
    for word in (b"accepted", b"duplicate", b"ignored", b"invalid", b"SIGNATURE_"):
        assert word in bodies, word


def test_the_stored_answers_are_prepared_from_djangos_chain(
    registered, signer, sent_signals, caplog
):
    outcome = compare([lambda: delivery(signer)], sent_signals, caplog)
    ((status, headers, body),) = outcome.answers
    assert (status, body) == ("200 OK", b'{"status": "accepted"}')
    assert headers == [
        ("Content-Type", "application/json"),
        ("Content-Length", "22"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]


def test_templates_are_not_changed(registered, signer, sent_signals, caplog):
    before = [(dict(t.items()), t.content, t.closed) for t in views.STORED_ANSWERS]
    compare([lambda: delivery(signer)] * 2, sent_signals, caplog)
    assert [(dict(t.items()), t.content, t.closed) for t in views.STORED_ANSWERS] == before


# -- answers no view gives today, through the same inline steps ---------------------------------


def _answering(monkeypatch: pytest.MonkeyPatch, answer: Callable[[], Any]) -> None:
    """Both chains' webhook view answers ``answer()`` (``acknowledge`` is looked up when the
    handler is built, and by ``saleor_webhook`` at each call)."""
    monkeypatch.setattr(views, "acknowledge", lambda request: answer())


def _with_cookie_and_header() -> HttpResponse:
    response = HttpResponse(b"x", content_type="text/plain", status=202)
    response.set_cookie("seen", "1", max_age=10)
    response["Referrer-Policy"] = "no-referrer"
    response["Content-Length"] = "1"
    return response


class _OwnClose(HttpResponse):
    """A buffered response with a ``close()`` of its own."""

    def close(self) -> None:
        logging.getLogger("tests.own_close").warning("closing %s", self.status_code)
        super().close()


def _raising() -> HttpResponse:
    raise RuntimeError("database on fire")


@pytest.mark.parametrize(
    "answer",
    [
        _with_cookie_and_header,
        lambda: HttpResponse(b"nothing here", status=404),
        lambda: StreamingHttpResponse(iter([b"a", b"b"])),
        lambda: _OwnClose(b"own", status=201),
        _raising,
        lambda: None,
    ],
    ids=["cookie-and-header", "404", "streaming", "own-close", "raises", "none"],
)
def test_other_answers(registered, signer, sent_signals, caplog, monkeypatch, settings, answer):
    settings.SECURE_HSTS_SECONDS = 10
    _answering(monkeypatch, answer)
    requests = [lambda: delivery(signer), lambda: {**delivery(signer), "wsgi.url_scheme": "https"}]
    compare(requests, sent_signals, caplog)


def test_insecure_proxy_header_setting_at_the_security_boundary(
    registered, signer, sent_signals, caplog, settings
):
    """``is_secure`` raising (a malformed ``SECURE_PROXY_SSL_HEADER`` value) is turned into a
    500 where ``SecurityMiddleware`` would raise it, for the prepared answers too."""
    settings.SECURE_HSTS_SECONDS = 10
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    requests = [lambda: {**delivery(signer), "HTTP_X_FORWARDED_PROTO": "https"}]
    compare(requests, sent_signals, caplog)


def test_exception_inside_the_store(registered, signer, sent_signals, caplog, monkeypatch):
    def broken(**kwargs: Any) -> bool:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(inbox, "store_webhook", broken)
    outcome = compare([lambda: delivery(signer)], sent_signals, caplog)
    assert outcome.answers[0][0] == "500 Internal Server Error"


@pytest.fixture
def senders() -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def started(sender: Any, **kwargs: Any) -> None:
        seen.append(("started", sender))

    def finished(sender: Any, **kwargs: Any) -> None:
        seen.append(("finished", sender))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield seen
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


def test_signals_come_from_the_handlers_class(registered, signer, sent_signals, senders):
    handler, used = inline_handler()
    handler(delivery(signer), lambda *args: None)
    handler(delivery(signer, saleor_signature="bad"), lambda *args: None)
    assert used == ["_webhook_chain"] * 2
    assert senders == [("started", AppWSGIHandler), ("finished", AppWSGIHandler)] * 2


def test_a_failing_receiver_is_logged_and_the_answer_still_goes_out(
    registered, signer, sent_signals, caplog
):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("cache server gone")

    signals.request_finished.connect(broken)
    try:
        answers = {}
        for usable in (True, False):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(fastpath, "usable", lambda usable=usable: usable)
                handler = AppWSGIHandler()
                assert (handler._fast_webhook is not None) is usable
                caplog.clear()
                results = [
                    handler(delivery(signer), lambda *args: None),
                    handler(delivery(signer, saleor_signature="x"), lambda *args: None),
                ]
                logged = [
                    (r.levelname, r.getMessage(), str(r.exc_info[1]))
                    for r in caplog.records
                    if r.name == "saleor_crm_plugin.app.handler"
                ]
                answers[usable] = (results, logged)
                InboxEvent.objects.all().delete()
    finally:
        signals.request_finished.disconnect(broken)
    assert answers[True] == answers[False]
    results, logged = answers[True]
    assert results[0] == [b'{"status": "accepted"}']
    assert [message for _, message, _ in logged] == [
        'Error closing the response to <HttpResponse status_code=200, "application/json">',
        'Error closing the response to <JsonResponse status_code=401, "application/json">',
    ]


def test_fallback_when_a_setting_redirects(registered, signer, settings):
    settings.PREPEND_WWW = True
    assert AppWSGIHandler()._fast_webhook is None
    settings.PREPEND_WWW = False
    settings.SECURE_SSL_REDIRECT = True
    assert AppWSGIHandler()._fast_webhook is None


# -- GraphQL ------------------------------------------------------------------------------------

CUSTOMER_360 = """
query Customer360($first: Int) {
  me {
    id userId email firstName lastName isGuest orderCount firstOrderAt lastOrderAt
    channelStats { channelSlug currency orderCount totalSpent { amount currency } }
    orders(first: $first) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { node {
        orderId number status channelSlug total { amount currency }
        lines { productId productName quantity unitPrice { amount } totalPrice { amount } }
      } }
    }
  }
}
"""


@pytest.fixture
def shopper(db: Any) -> Any:
    customer = make_customer(1, order_count=3)
    for n in range(1, 4):
        make_order(customer, n)
    make_stats(customer, order_count=3)
    return customer


def _graphql(payload: Any, token: str | None = None, **headers: str) -> Request:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if token:
        headers["authorization"] = f"Bearer {token}"
    return lambda: environ(data, path=GRAPHQL_PATH, **headers)


def test_graphql_posts(saleor, mint, shopper, sent_signals, caplog, settings):
    settings.CRM_GRAPHQL_ALLOWED_ORIGINS = ["https://shop.example"]
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    token = mint(user_gid(1))
    expired = mint(user_gid(1), expires_in=-60)
    query = {"query": CUSTOMER_360, "variables": {"first": 2}}
    requests = [
        _graphql(query, token),  # rendered by PostgreSQL
        _graphql(query, token, origin="https://shop.example"),  # CORS headers
        _graphql(query, token, origin="https://evil.example"),
        _graphql({"query": "{ __typename }"}, token),  # the executor
        _graphql([query, {"query": "{ __typename }"}], token),  # batch
        _graphql([], token),
        _graphql({"query": CUSTOMER_360}),  # anonymous
        _graphql(query, expired),
        _graphql(query, "not-a-jwt"),
        _graphql({"query": "{ nosuchfield }"}, token),
        _graphql({"query": "{ __typename"}, token),
        _graphql(b"not json"),
        _graphql(b"\xff\xfe"),
        _graphql(b""),
        lambda: {**_graphql(query, token)(), "HTTP_HOST": "evil.example"},
    ]
    outcome = compare(requests, sent_signals, caplog)
    assert outcome.answers[0][0] == "200 OK"
    assert b'"orders"' in outcome.answers[0][2]
    assert ("Access-Control-Allow-Origin", "https://shop.example") in outcome.answers[1][1]
    assert outcome.answers[7][0].startswith("401")
    assert outcome.answers[-1][0] == "400 Bad Request"


def test_graphql_https_and_hsts(saleor, mint, shopper, sent_signals, caplog, settings):
    settings.SECURE_HSTS_SECONDS = 100
    token = mint(user_gid(1))
    make = _graphql({"query": CUSTOMER_360}, token)
    outcome = compare([make, lambda: {**make(), "wsgi.url_scheme": "https"}], sent_signals, caplog)
    assert ("Strict-Transport-Security", "max-age=100") in outcome.answers[1][1]


def test_graphql_other_methods_stay_with_django(db, sent_signals, caplog):
    handler, used = inline_handler()
    for method in ("GET", "OPTIONS", "PUT"):
        handler({**environ(path=GRAPHQL_PATH), "REQUEST_METHOD": method}, lambda *a: None)
    handler(environ(method="GET", path="/healthz"), lambda *a: None)
    assert used == []


def test_the_registered_instance_url_is_the_captured_one(registered):
    assert registered.saleor_api_url == CAPTURED_API_URL
