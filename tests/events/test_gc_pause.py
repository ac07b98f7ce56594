"""The worker's batch steps run with automatic garbage collection off (``core.heap.paused_gc``) and
always leave it as they found it: on after the step, even when the step raises, and off when
the process had turned it off itself. What they compute is not affected (the equivalence,
replay and order tests of the inbox run with the pause in place)."""

from __future__ import annotations

import gc

import pytest

from saleor_crm_plugin.core.heap import paused_gc
from saleor_crm_plugin.customers import batch, projection
from saleor_crm_plugin.events import from_webhook, handlers, inbox
from tests.captures import all_captures


@pytest.fixture(autouse=True)
def _collection_restored():
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_pause_restores_what_it_found_even_on_errors():
    gc.enable()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():  # nested: still off inside, the outer block turns it back on
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()  # a process that runs without automatic collection keeps it off
    with paused_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_translation_pauses_collection_and_restores_it(monkeypatch):
    seen = []
    real = from_webhook._translate

    def spy(*args):
        seen.append(gc.isenabled())
        return real(*args)

    monkeypatch.setattr(from_webhook, "_translate", spy)
    capture = next(c for c in all_captures() if c.event_header.startswith("order_"))
    text = capture.raw_body.decode()
    kind = capture.event_header.lower()
    gc.enable()
    event = from_webhook.translate_stored_webhook(kind, text, capture.api_url, "k")
    assert event.dedupe_key == "k"
    assert seen == [False] and gc.isenabled()
    with pytest.raises(from_webhook.PayloadError):
        from_webhook.translate_stored_webhook(kind, "{not json", capture.api_url, "k")
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    from_webhook.translate_stored_webhook(kind, text, capture.api_url, "k")
    assert seen[-1] is False and not gc.isenabled()


@pytest.mark.django_db
def test_batch_steps_run_paused_and_leave_collection_on(monkeypatch):
    seen: dict[str, list[bool]] = {"apply": [], "domains": [], "stats": []}
    real_unit_load = batch._Unit.load
    real_refresh_chunk = projection._refresh_chunk

    def unit_load(self):
        seen["apply"].append(gc.isenabled())
        return real_unit_load(self)

    def refresh_chunk(ids):
        seen["stats"].append(gc.isenabled())
        return real_refresh_chunk(ids)

    def domains(events):
        seen["domains"].append(gc.isenabled())

    monkeypatch.setattr(batch._Unit, "load", unit_load)
    monkeypatch.setattr(projection, "_refresh_chunk", refresh_chunk)
    monkeypatch.setattr(handlers, "_domain_handlers", lambda: ((None, domains),))
    for capture in [c for c in all_captures() if c.event_header.startswith("order_")][:5]:
        event = from_webhook.translate_webhook(
            capture.event_header, capture.raw_body, capture.api_url
        )
        inbox.store_event(event, kick=False)
    gc.enable()
    inbox.process_pending(batch_size=500)
    assert seen["apply"] and not any(seen["apply"])
    assert seen["stats"] and not any(seen["stats"])
    assert seen["domains"] == [False]
    assert gc.isenabled()


def test_a_failing_batch_step_leaves_collection_on(monkeypatch):
    def boom(*_args, **_kwargs):
        raise RuntimeError("domain down")

    monkeypatch.setattr(handlers, "_domain_handlers", lambda: ((None, boom),))
    gc.enable()
    with pytest.raises(RuntimeError):
        handlers.handle_domain_events([])
    assert gc.isenabled()
