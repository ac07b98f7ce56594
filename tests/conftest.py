from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.app.registry import instance_cache
from saleor_crm_plugin.loyalty.config import clear_stored_overrides_cache
from tests.captures import CAPTURED_API_URL, Capture, jwks


@pytest.fixture(autouse=True)
def _fresh_instance_cache() -> Iterator[None]:
    from saleor_crm_plugin.core.auth import verified_tokens

    instance_cache.clear()
    verified_tokens.clear()
    yield
    instance_cache.clear()
    verified_tokens.clear()


@pytest.fixture(autouse=True)
def _fresh_loyalty_settings_cache() -> Iterator[None]:
    """Settings saved in a rolled-back test must not outlive it in the process cache."""
    clear_stored_overrides_cache()
    yield
    clear_stored_overrides_cache()


LEAN_EXECUTOR_USES: list[int] = [0]


@pytest.fixture(autouse=True)
def _lean_executor_matches_graphql_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every query the suite sends that the lean executor answers is answered again by
    graphql-core's executor, and the two ``data`` must be identical (key order included) with
    no errors: the whole suite is a differential test of ``graphql/core/executor.py``. The
    second run's SQL is dropped from the captured queries so query-count assertions still
    measure what a request costs."""
    from django.db import connection
    from graphql.execution import execute

    from saleor_crm_plugin.graphql import views
    from saleor_crm_plugin.graphql.core import executor
    from saleor_crm_plugin.graphql.core.context import GraphQLContext

    lean = executor.execute_query

    def checked(
        schema: Any, document: Any, context: Any, variables: Any, name: Any, plans: Any = None
    ) -> Any:
        data = lean(schema, document, context, variables, name, plans)
        LEAN_EXECUTOR_USES[0] += 1
        logged = len(connection.queries_log)
        fresh = GraphQLContext(request=context.request, requester=context.requester)
        result = execute(
            schema, document, context_value=fresh, variable_values=variables, operation_name=name
        )
        fresh.release()  # as the view releases its own (test_request_garbage)
        while len(connection.queries_log) > logged:
            connection.queries_log.pop()
        assert not result.errors, (
            f"graphql-core reports errors the lean executor missed: {result.errors}"
        )
        assert json.dumps(data) == json.dumps(result.data), (
            "lean executor differs from graphql-core"
        )
        return data

    monkeypatch.setattr(views, "execute_query", checked)


@pytest.fixture
def saleor_instance(db: Any) -> SaleorInstance:
    """The Saleor that produced the captures, registered with its real JWKS."""
    return SaleorInstance.objects.create(
        saleor_api_url=CAPTURED_API_URL, jwks=jwks(), app_id="QXBwOjE="
    )


@pytest.fixture
def deliver(client: Any) -> Callable[..., Any]:
    """POST a captured delivery to the webhook endpoint exactly as Saleor sent it."""

    def _deliver(
        capture: Capture,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
    ) -> Any:
        sent = {k: v for k, v in capture.headers.items() if k.lower().startswith("saleor-")}
        sent.update(headers or {})
        for name in drop:
            sent.pop(name, None)
        return client.post(
            "/api/webhooks/saleor",
            data=capture.raw_body if body is None else body,
            content_type="application/json",
            headers=sent,
        )

    return _deliver


class FakeSaleor:
    """A local HTTP server standing in for Saleor's *transport*: it serves the captured JWKS
    and answers GraphQL by executing the incoming document against Saleor's real schema
    (``tests/contract/schema.graphql``) over data the test hands it. So an answer can only have
    a shape Saleor could give for that very document; data that does not fit the schema is
    recorded in ``schema_errors`` and fails the test."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = jwks()
        self.requests: list[dict[str, Any]] = []
        self.schema_errors: list[str] = []
        self.root: Callable[[str, dict[str, Any], dict[str, str]], Any] = lambda q, v, h: {
            "app": {"id": "QXBwOjE="}
        }
        self.graphql: Callable[[dict[str, Any], dict[str, str]], tuple[int, Any]] = (
            self._execute_against_schema
        )
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.requests.append({"method": "GET", "path": self.path})
                if self.path == "/.well-known/jwks.json":
                    self._send(200, fake.jwks)
                else:
                    self._send(404, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = dict(self.headers.items())
                fake.requests.append(
                    {"method": "POST", "path": self.path, "body": body, "headers": headers}
                )
                status, answer = fake.graphql(body, headers)
                self._send(status, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, root: Callable[[str, dict[str, Any], dict[str, str]], Any]) -> None:
        """``root(query, variables, headers)`` returns the data Saleor would resolve."""
        self.root = root

    def _execute_against_schema(
        self, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, Any]:
        from graphql import graphql

        from tests.captures import saleor_schema

        query = body.get("query", "")
        variables = body.get("variables") or {}
        data = self.root(query, variables, headers)
        if isinstance(data, tuple):  # (status, raw body): transport-level answers
            return data
        result = graphql(saleor_schema(), query, root_value=data, variable_values=variables)
        if result.invalid or result.errors:
            self.schema_errors.extend(str(e) for e in result.errors or [])
        answer: dict[str, Any] = {"data": result.data}
        if isinstance(data, dict) and data.get("__errors__"):
            answer["errors"] = data["__errors__"]
        return 200, answer

    @property
    def api_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/graphql/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_saleor() -> Iterator[FakeSaleor]:
    server = FakeSaleor()
    yield server
    server.close()
    assert server.schema_errors == [], "the fake Saleor was given data its schema rejects"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LEAN_EXECUTOR_USES[0]:
        terminalreporter.write_line(
            f"lean GraphQL executor answered (and matched graphql-core) {LEAN_EXECUTOR_USES[0]}"
            " queries"
        )
