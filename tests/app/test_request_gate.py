"""The request gate: one request thread of a process runs at a time, except while it waits on
Saleor; outside a gated request it does nothing."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core import signals
from django.db import close_old_connections
from django.http import HttpResponse
from django.test import override_settings

from saleor_crm_plugin.app.handler import AppWSGIHandler
from saleor_crm_plugin.core import gate
from saleor_crm_plugin.core.saleor_api import SaleorClient


@contextmanager
def held() -> Iterator[None]:
    """The gate around a block, as the App's handler takes it around a request."""
    took = gate.enter()
    try:
        yield
    finally:
        if took:
            gate.leave()


def _run(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_second_request_waits_for_the_first() -> None:
    events: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with held():
            inside.set()
            time.sleep(0.2)
            events.append("first out")

    def second() -> None:
        inside.wait(5)
        with held():
            events.append("second in")

    threads = [_run(first), _run(second)]
    for thread in threads:
        thread.join(5)
    assert events == ["first out", "second in"]


def test_a_call_to_saleor_lets_the_next_request_in(fake_saleor: Any) -> None:
    """The first request is still waiting on Saleor when the second one runs: Saleor answers
    only once the second request got in (or after 3 s, which fails the test)."""
    second_ran = threading.Event()
    saleor_called = threading.Event()
    answered_after_second: list[bool] = []
    held_after_call: list[bool] = []

    def saleor(query: str, variables: dict[str, Any], headers: dict[str, str]) -> Any:
        saleor_called.set()
        answered_after_second.append(second_ran.wait(3))
        return {"shop": {"name": "Demo"}}

    fake_saleor.respond(saleor)

    def first() -> None:
        with held():
            SaleorClient(fake_saleor.api_url).execute("query { shop { name } }")
            held_after_call.append(gate.inside() and gate._gate.locked())

    def second() -> None:
        saleor_called.wait(5)
        with held():
            second_ran.set()

    threads = [_run(first), _run(second)]
    for thread in threads:
        thread.join(10)
    assert answered_after_second == [True]
    assert held_after_call == [True]  # the first request got the gate back before going on
    assert not gate._gate.locked()


def test_the_same_thread_does_not_wait_for_itself() -> None:
    with held():
        with held():
            assert gate._gate.locked()
        assert gate._gate.locked()
    assert not gate._gate.locked()


def test_outside_a_request_nothing_is_taken_or_released() -> None:
    with gate.released():
        assert not gate._gate.locked()
    assert not gate._gate.locked()


def test_an_exception_leaves_the_gate_open() -> None:
    with pytest.raises(RuntimeError), held(), gate.released():
        raise RuntimeError("Saleor unreachable")
    assert not gate._gate.locked()
    assert not gate.inside()


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/healthz",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }


@pytest.fixture
def no_connection_recycling() -> Iterator[None]:
    """``close_old_connections`` detached, as Django's test client does: inside the test's
    transaction it would close the connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_app_handler_holds_the_gate_for_each_request(
    enabled: bool, db: Any, no_connection_recycling: None
) -> None:
    seen: list[bool] = []
    with override_settings(CRM_REQUEST_GATE=enabled):
        handler = AppWSGIHandler()

    def get_response(request: Any) -> HttpResponse:
        seen.append(gate._gate.locked())
        return HttpResponse(b"ok")

    handler.get_response = get_response  # type: ignore[method-assign]
    assert handler(_environ(), lambda status, headers: None) == [b"ok"]
    assert seen == [enabled]
    assert not gate._gate.locked()


def _observed_insert(
    monkeypatch: pytest.MonkeyPatch, fail: bool = False
) -> list[tuple[bool, bool]]:
    """``(this thread holds the gate, anyone holds it)`` while the acknowledgement's insert
    runs; the insert itself still runs (or fails, with ``fail``)."""
    from saleor_crm_plugin.events import inbox

    seen: list[tuple[bool, bool]] = []
    real = inbox._execute_server_bound

    def observed(*args: Any, **kwargs: Any) -> Any:
        seen.append((gate.inside(), gate._gate.locked()))
        if fail:
            raise RuntimeError("PostgreSQL went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox, "_execute_server_bound", observed)
    return seen


def _store(key: str) -> bool:
    from saleor_crm_plugin.events import inbox

    return inbox.store_webhook(
        dedupe_key=key,
        kind="order_created",
        saleor_api_url="https://gate.example/graphql/",
        raw_body="{}",
        kick=False,
    )


def test_the_acknowledgements_insert_lets_the_next_request_in(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In autocommit the insert waits for PostgreSQL's WAL flush: the gate is open meanwhile
    and taken back before the acknowledgement goes on."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the server-bound insert is PostgreSQL's")
    seen = _observed_insert(monkeypatch)
    with held():
        assert _store("gate-1") is True
        assert gate.inside() and gate._gate.locked()
    assert seen == [(False, False)]
    assert not gate._gate.locked()


def test_a_failed_insert_takes_the_gate_back_before_raising(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the server-bound insert is PostgreSQL's")
    seen = _observed_insert(monkeypatch, fail=True)
    with held():
        with pytest.raises(RuntimeError):
            _store("gate-2")
        assert gate.inside() and gate._gate.locked()
    assert seen == [(False, False)]
    assert not gate._gate.locked()


def test_an_insert_outside_a_request_takes_nothing(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the server-bound insert is PostgreSQL's")
    seen = _observed_insert(monkeypatch)
    assert _store("gate-3") is True
    assert seen == [(False, False)]
    assert not gate._gate.locked()
