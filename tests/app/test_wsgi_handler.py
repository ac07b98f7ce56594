"""The App's WSGI handler answers every request exactly as Django's ``WSGIHandler`` does.

Each case sends the same requests through both handlers and compares status, headers (order
included), body, the signals sent, the log records and what was stored; each asserts which
chain the App's handler used, so a case cannot pass by never taking the short path."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.http import StreamingHttpResponse

from saleor_crm_plugin.app.handler import GRAPHQL_PATH, WEBHOOK_PATH, AppWSGIHandler
from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.core import gate
from saleor_crm_plugin.demo.signing import DemoSigner
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent
from tests.captures import CAPTURED_API_URL, load_capture

BODY = load_capture("ORDER_CREATED", "subscription").raw_body
PER_ROW = {"id", "received_at", "available_at"}


@pytest.fixture(scope="module")
def signer() -> DemoSigner:
    return DemoSigner.generate()


@pytest.fixture
def registered(db: Any, signer: DemoSigner) -> SaleorInstance:
    return SaleorInstance.objects.create(saleor_api_url=CAPTURED_API_URL, jwks=signer.jwks)


@pytest.fixture
def sent_signals() -> Iterator[list[str]]:
    """The request signals, recorded; ``close_old_connections`` is detached while the test's
    transaction is open, as Django's test client does (it would close the connection)."""
    sent: list[str] = []

    def started(**kwargs: Any) -> None:
        sent.append("started")

    def finished(**kwargs: Any) -> None:
        sent.append("finished")

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield sent
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def environ(
    body: bytes = b"",
    *,
    method: str = "POST",
    path: str = WEBHOOK_PATH,
    host: str = "127.0.0.1:8000",
    scheme: str = "http",
    **headers: str,
) -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    env.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    return env


def delivery(signer: DemoSigner, body: bytes = BODY, **overrides: str) -> dict[str, Any]:
    headers = {
        "saleor_event": "ORDER_CREATED",
        "saleor_api_url": CAPTURED_API_URL,
        "saleor_signature": signer.sign(body),
        **overrides,
    }
    return environ(body, **{k: v for k, v in headers.items() if v is not None})


class Outcome:
    def __init__(self) -> None:
        self.answers: list[tuple[str, list[tuple[str, str]], bytes]] = []
        self.rows: list[dict[str, Any]] = []
        self.signals: list[str] = []
        self.logs: list[tuple[str, str, str]] = []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return repr(vars(self))


def run(
    handler: WSGIHandler,
    requests: list[Callable[[], dict[str, Any]]],
    sent_signals: list[str],
    caplog: pytest.LogCaptureFixture,
) -> Outcome:
    """Send the requests (fresh environ each), collect everything observable, then delete the
    stored rows so the other handler starts from the same state."""
    outcome = Outcome()
    sent_signals.clear()
    caplog.clear()
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        seen.append((status, list(headers)))
        return lambda data: None

    for make in requests:
        seen.clear()
        result = handler(make(), start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):  # as a WSGI server does
                result.close()
        ((status, headers),) = seen
        outcome.answers.append((status, headers, body))
    outcome.signals = list(sent_signals)
    outcome.logs = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    outcome.rows = [
        {k: v for k, v in row.items() if k not in PER_ROW}
        for row in InboxEvent.objects.order_by("dedupe_key").values()
    ]
    InboxEvent.objects.all().delete()
    return outcome


def compare(
    requests: list[Callable[[], dict[str, Any]]],
    sent_signals: list[str],
    caplog: pytest.LogCaptureFixture,
    *,
    short_path: bool,
) -> Outcome:
    caplog.set_level(logging.INFO)
    lean = AppWSGIHandler()
    used: list[str] = []

    def counting(name: str) -> None:
        chain = getattr(lean, name)

        def counted(request: Any) -> Any:
            used.append(name)
            return chain(request)

        setattr(lean, name, counted)

    counting("_webhook_chain")
    counting("_graphql_chain")
    django = run(WSGIHandler(), requests, sent_signals, caplog)
    ours = run(lean, requests, sent_signals, caplog)
    assert ours == django
    assert len(used) == (len(requests) if short_path else 0)
    assert django.signals == ["started", "finished"] * len(requests)
    return ours


def test_accepted_delivery(registered, signer, sent_signals, caplog):
    outcome = compare([lambda: delivery(signer)], sent_signals, caplog, short_path=True)

    ((status, headers, body),) = outcome.answers
    assert (status, body) == ("200 OK", b'{"status": "accepted"}')
    assert ("Content-Length", "22") in headers
    assert ("X-Content-Type-Options", "nosniff") in headers
    assert len(outcome.rows) == 1


def test_duplicate_delivery(registered, signer, sent_signals, caplog):
    env = delivery(signer)
    body = env["wsgi.input"].getvalue()

    def again() -> dict[str, Any]:
        return {**env, "wsgi.input": io.BytesIO(body)}

    outcome = compare([again, again], sent_signals, caplog, short_path=True)

    assert [a[2] for a in outcome.answers] == [
        b'{"status": "accepted"}',
        b'{"status": "duplicate"}',
    ]
    assert len(outcome.rows) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"saleor_signature": "e30..c2lnbmF0dXJl"},
        {"saleor_signature": None},
        {"saleor_api_url": None},
        {"saleor_api_url": "https://unknown.example/graphql/"},
    ],
    ids=["bad-signature", "no-signature", "no-api-url", "unknown-instance"],
)
def test_refused_deliveries(registered, signer, sent_signals, caplog, overrides):
    outcome = compare(
        [lambda: delivery(signer, **overrides)], sent_signals, caplog, short_path=True
    )

    assert outcome.answers[0][0] == "401 Unauthorized"
    assert any(name == "django.request" for name, _, _ in outcome.logs)
    assert outcome.rows == []


def test_ignored_event(registered, signer, sent_signals, caplog):
    outcome = compare(
        [lambda: delivery(signer, saleor_event="PRODUCT_CREATED")],
        sent_signals,
        caplog,
        short_path=True,
    )

    assert b'"ignored"' in outcome.answers[0][2]
    assert outcome.rows == []


def test_disallowed_host(registered, signer, sent_signals, caplog, settings):
    settings.ALLOWED_HOSTS = ["crm.example"]
    outcome = compare([lambda: delivery(signer)], sent_signals, caplog, short_path=True)

    assert outcome.answers[0][0] == "400 Bad Request"
    assert any(name == "django.security.DisallowedHost" for name, _, _ in outcome.logs)
    assert outcome.rows == []


def test_oversized_body(registered, signer, sent_signals, caplog, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(BODY) - 1
    outcome = compare([lambda: delivery(signer)], sent_signals, caplog, short_path=True)

    assert outcome.answers[0][0] == "400 Bad Request"
    assert outcome.rows == []


def test_secure_request_gets_the_same_security_headers(
    registered, signer, sent_signals, caplog, settings
):
    settings.SECURE_HSTS_SECONDS = 3600
    outcome = compare(
        [lambda: {**delivery(signer), "wsgi.url_scheme": "https"}],
        sent_signals,
        caplog,
        short_path=True,
    )

    assert ("Strict-Transport-Security", "max-age=3600") in outcome.answers[0][1]


def test_ssl_redirect(registered, signer, sent_signals, caplog, settings):
    settings.SECURE_SSL_REDIRECT = True
    outcome = compare([lambda: delivery(signer)], sent_signals, caplog, short_path=True)

    assert outcome.answers[0][0] == "301 Moved Permanently"
    assert outcome.rows == []


def test_exception_inside_the_view(registered, signer, sent_signals, caplog, monkeypatch):
    def broken(**kwargs: Any) -> bool:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(inbox, "store_webhook", broken)
    outcome = compare([lambda: delivery(signer)], sent_signals, caplog, short_path=True)

    assert outcome.answers[0][0] == "500 Internal Server Error"
    assert ("django.request", "ERROR", f"Internal Server Error: {WEBHOOK_PATH}") in outcome.logs


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD"])
def test_other_methods_take_djangos_path(registered, signer, sent_signals, caplog, method):
    outcome = compare(
        [lambda: {**delivery(signer), "REQUEST_METHOD": method}],
        sent_signals,
        caplog,
        short_path=False,
    )

    assert outcome.answers[0][0] == "405 Method Not Allowed"


@pytest.mark.parametrize(
    "path", [f"{WEBHOOK_PATH}/", "/graphql", "/healthz", "/api/manifest", "/nowhere"]
)
def test_other_paths_take_djangos_path(registered, signer, sent_signals, caplog, path):
    compare([lambda: environ(method="GET", path=path)], sent_signals, caplog, short_path=False)


def test_other_middleware_lists_use_djangos_handler_alone(db, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.app.test_wsgi_handler.Passthrough"]

    handler = AppWSGIHandler()

    assert not hasattr(handler, "_webhook_chain")
    assert not hasattr(handler, "_graphql_chain")
    assert handler._middleware_chain is not None


class Passthrough:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)


def test_the_app_serves_its_handler():
    from saleor_crm_plugin.app import wsgi

    assert isinstance(wsgi.application, AppWSGIHandler)


def graphql(body: bytes, **headers: str) -> Callable[[], dict[str, Any]]:
    return lambda: environ(body, path=GRAPHQL_PATH, **headers)


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ __typename }"}',
        b'{"query": "{ crmCustomers(first: 1) { totalCount } }"}',  # no token: refused
        b'{"query": "{ nosuchfield }"}',  # fails validation
        b'{"query": "{ __typename"}',  # syntax error
        b"not json",
        b"",
    ],
)
def test_graphql_posts_take_the_short_path(db, sent_signals, caplog, body):
    outcome = compare([graphql(body)], sent_signals, caplog, short_path=True)

    assert outcome.answers[0][0].split()[0] in {"200", "400"}


def test_graphql_with_an_invalid_token(db, sent_signals, caplog):
    compare(
        [graphql(b'{"query": "{ __typename }"}', authorization="Bearer not-a-jwt")],
        sent_signals,
        caplog,
        short_path=True,
    )


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "PUT"])
def test_other_graphql_methods_take_djangos_path(db, sent_signals, caplog, method):
    compare(
        [lambda: {**environ(path=GRAPHQL_PATH), "REQUEST_METHOD": method}],
        sent_signals,
        caplog,
        short_path=False,
    )


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "saleor_crm_plugin.access"]


def test_access_log_line_per_request(registered, signer, sent_signals, caplog, settings):
    """Written by the request's thread, one line per request whichever chain served it,
    with the status Django answered and the time the handler took."""
    settings.CRM_ACCESS_LOG = True
    handler = AppWSGIHandler()
    caplog.set_level(logging.INFO, logger="saleor_crm_plugin.access")
    answers = []
    for env in (
        delivery(signer),
        delivery(signer, saleor_signature="bad"),
        environ(method="GET", path="/healthz"),
    ):
        handler(env, lambda status, headers, *exc: answers.append(status))
    lines = _access_lines(caplog)
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        '127.0.0.1 - "POST /api/webhooks/saleor HTTP/1.1" 200',
        '127.0.0.1 - "POST /api/webhooks/saleor HTTP/1.1" 401',
        '127.0.0.1 - "GET /healthz HTTP/1.1" 200',
    ]
    assert answers[:2] == ["200 OK", "401 Unauthorized"]
    assert all(float(line.rsplit(" ", 1)[1]) >= 0 for line in lines)


def test_no_access_log_unless_asked(registered, signer, sent_signals, caplog, settings):
    settings.CRM_ACCESS_LOG = False
    handler = AppWSGIHandler()
    caplog.set_level(logging.INFO, logger="saleor_crm_plugin.access")
    handler(delivery(signer), lambda status, headers, *exc: None)
    assert _access_lines(caplog) == []


def _serving(response: Any) -> AppWSGIHandler:
    """The App's handler answering every request with ``response``."""
    handler = AppWSGIHandler()
    handler.get_response = lambda request: response  # type: ignore[method-assign]
    return handler


def test_a_buffered_answer_is_handed_over_whole_and_closed(db, sent_signals):
    """Granian sends a list in one piece: the body is Django's, and the response is closed
    (``request_finished``) before the server gets it, inside the request gate."""
    finished_inside_gate: list[bool] = []

    def finished(**kwargs: Any) -> None:
        finished_inside_gate.append(gate.inside())

    signals.request_finished.connect(finished)
    try:
        handler = AppWSGIHandler()
        result = handler(environ(method="GET", path="/healthz"), lambda *args: None)
    finally:
        signals.request_finished.disconnect(finished)

    assert type(result) is list
    assert b"".join(result) == b'{"status": "ok"}'
    assert sent_signals == ["started", "finished"]
    assert finished_inside_gate == [True]


def test_a_streaming_answer_is_left_to_the_server(db, sent_signals):
    response = StreamingHttpResponse(iter([b"a", b"b"]))
    handler = _serving(response)

    result = handler(environ(method="GET", path="/healthz"), lambda *args: None)

    assert result is response
    assert sent_signals == ["started"]  # closed by the server, after it sent the chunks
    assert b"".join(result) == b"ab"
    result.close()
    assert sent_signals == ["started", "finished"]


def test_a_failing_close_is_logged_and_the_answer_still_goes_out(db, sent_signals, caplog):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("cache server gone")

    signals.request_finished.connect(broken)
    try:
        result = AppWSGIHandler()(environ(method="GET", path="/healthz"), lambda *args: None)
    finally:
        signals.request_finished.disconnect(broken)

    assert result == [b'{"status": "ok"}']
    ((record,),) = [[r for r in caplog.records if r.name == "saleor_crm_plugin.app.handler"]]
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith("Error closing the response to <JsonResponse")
    assert record.exc_info is not None and str(record.exc_info[1]) == "cache server gone"
