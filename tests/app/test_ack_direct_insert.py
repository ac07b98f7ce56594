"""The acknowledgement's INSERT sent through libpq directly (``inbox._insert_prepared_directly``)
against the psycopg cursor it replaced: same answers, same rows, same errors, over generated
deliveries, and the cursor whenever the direct way does not apply or fails."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import DataError, connection, connections, transaction

from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.models import InboxEvent

pytestmark = pytest.mark.django_db(transaction=True)

psycopg = pytest.importorskip("psycopg")

KINDS = ["order.created", "order.fully_paid", "customer.updated", "checkout.updated"]
URLS = ["https://a.saleor.local/graphql/", "https://b.saleor.local/graphql/", ""]
FIELDS = [f.attname for f in InboxEvent._meta.concrete_fields if not f.primary_key]


@pytest.fixture(autouse=True)
def _postgres_on_psycopg3():
    if connection.vendor != "postgresql" or not inbox._on_psycopg3():
        pytest.skip("the direct INSERT is for PostgreSQL on psycopg 3")


def _body(rng: random.Random) -> str:
    """JSON-ish text of a few bytes to ~20 kB, with non-ASCII characters now and then."""
    size = rng.choice([0, 1, 50, 900, 9_000, 20_000])
    alphabet = "abc{}[]:,\"' \\\n0123456789" + rng.choice(["", "é€😀ß\u2028"])
    return "".join(rng.choice(alphabet) for _ in range(size))


def _deliveries(seed: int, count: int = 40) -> list[dict[str, Any]]:
    """Deliveries with repeats (a duplicate is the same dedupe key again, whatever else)."""
    rng = random.Random(seed)
    made: list[dict[str, Any]] = []
    for _ in range(count):
        if made and rng.random() < 0.25:
            again = dict(rng.choice(made))
            if rng.random() < 0.5:
                again["raw_body"] = _body(rng)
            made.append(again)
            continue
        made.append(
            {
                "dedupe_key": f"{rng.getrandbits(256):064x}",
                "kind": rng.choice(KINDS),
                "saleor_api_url": rng.choice(URLS),
                "raw_body": _body(rng),
            }
        )
    return made


def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``timezone.now`` in the inbox as a clock that ticks by a known step per call, so two
    runs store the same timestamps."""
    ticks = itertools.count()
    start = datetime(2026, 12, 2, 4, 30, 0, 123_456, tzinfo=UTC)
    monkeypatch.setattr(
        inbox.timezone, "now", lambda: start + timedelta(microseconds=7_919 * next(ticks))
    )


def _rows() -> list[tuple[Any, ...]]:
    return sorted(tuple(getattr(r, f) for f in FIELDS) for r in InboxEvent.objects.all())


def _count_direct(monkeypatch: pytest.MonkeyPatch, *, off: bool = False) -> list[Any]:
    """Record what the direct INSERT answered per call (``off``: forced to answer ``None``,
    i.e. the cursor as before)."""
    answers: list[Any] = []
    real = inbox._insert_prepared_directly

    def counted(db: Any, params: list[Any]) -> Any:
        answer = None if off else real(db, params)
        answers.append(answer)
        return answer

    monkeypatch.setattr(inbox, "_insert_prepared_directly", counted)
    return answers


def _store_all(deliveries: list[dict[str, Any]]) -> list[bool]:
    return [inbox.store_webhook(**d, kick=False) for d in deliveries]


def _run(monkeypatch: pytest.MonkeyPatch, deliveries: list[dict[str, Any]], *, off: bool) -> Any:
    InboxEvent.objects.all().delete()
    with monkeypatch.context() as patch:
        _clock(patch)
        direct = _count_direct(patch, off=off)
        answers = _store_all(deliveries)
    return answers, _rows(), direct


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_direct_insert_answers_and_stores_what_the_cursor_did(monkeypatch, seed):
    deliveries = _deliveries(seed)

    old_answers, old_rows, _ = _run(monkeypatch, deliveries, off=True)
    new_answers, new_rows, direct = _run(monkeypatch, deliveries, off=False)

    assert new_answers == old_answers
    assert new_rows == old_rows
    assert len(old_rows) == sum(old_answers) > 0
    assert False in old_answers  # duplicates were generated
    # Every INSERT went the direct way (0 for a duplicate, 1 for a stored row).
    assert direct == [1 if stored else 0 for stored in new_answers]


def test_statement_dropped_on_the_server_is_prepared_again(monkeypatch):
    """As after ``DEALLOCATE``/``DISCARD ALL`` (the whole ``DEALLOCATE ALL`` would also drop
    the cursor's own ``_pg3_`` statement, which psycopg does not notice: not this change's)."""
    deliveries = _deliveries(7, count=12)
    old_answers, old_rows, _ = _run(monkeypatch, deliveries, off=True)

    InboxEvent.objects.all().delete()
    with monkeypatch.context() as patch:
        _clock(patch)
        direct = _count_direct(patch)
        answers = _store_all(deliveries[:5])
        with connection.cursor() as cursor:
            cursor.execute(inbox._DEALLOCATE.decode())
        answers += _store_all(deliveries[5:])

    assert (answers, _rows()) == (old_answers, old_rows)
    assert direct[5] is None  # the cursor stored that one
    assert None not in direct[:5] + direct[6:]


def test_statement_already_on_the_server_is_replaced(monkeypatch):
    """A state forgotten after an error (the statement still prepared on the server)."""
    deliveries = _deliveries(8, count=6)
    old_answers, old_rows, _ = _run(monkeypatch, deliveries, off=True)

    InboxEvent.objects.all().delete()
    with monkeypatch.context() as patch:
        _clock(patch)
        direct = _count_direct(patch)
        answers = _store_all(deliveries[:3])
        connections["default"].__dict__.pop(inbox._DIRECT_STATE)
        answers += _store_all(deliveries[3:])

    assert (answers, _rows()) == (old_answers, old_rows)
    assert None not in direct


@pytest.mark.parametrize("where", ["atomic", "prepare_threshold_none"])
def test_the_cursor_stores_when_the_direct_way_does_not_apply(monkeypatch, where):
    deliveries = _deliveries(9, count=10)
    old_answers, old_rows, _ = _run(monkeypatch, deliveries, off=True)

    InboxEvent.objects.all().delete()
    with monkeypatch.context() as patch:
        _clock(patch)
        direct = _count_direct(patch)
        if where == "atomic":
            with transaction.atomic():
                answers = _store_all(deliveries)
        else:
            connection.ensure_connection()
            patch.setattr(connection.connection, "prepare_threshold", None)
            answers = _store_all(deliveries)

    assert (answers, _rows()) == (old_answers, old_rows)
    assert direct == [None] * len(deliveries)


@pytest.mark.parametrize("off", [True, False])
def test_a_server_error_is_the_cursors_django_error(monkeypatch, off):
    """A value the column refuses: the direct way answers ``None`` and the cursor raises
    Django's ``DataError`` as before; nothing is stored, and the next delivery goes direct."""
    good = _deliveries(10, count=1)[0]
    with monkeypatch.context() as patch:
        direct = _count_direct(patch, off=off)
        inbox.store_webhook(**good, kick=False)
        with pytest.raises(DataError):
            inbox.store_webhook(**{**good, "dedupe_key": "k" * 129}, kick=False)
        assert inbox.store_webhook(**{**good, "dedupe_key": "other"}, kick=False)
    assert InboxEvent.objects.count() == 2
    assert direct == ([None] * 3 if off else [1, None, 1])


def test_a_new_connection_prepares_again(monkeypatch):
    deliveries = _deliveries(11, count=6)
    old_answers, old_rows, _ = _run(monkeypatch, deliveries, off=True)

    InboxEvent.objects.all().delete()
    with monkeypatch.context() as patch:
        _clock(patch)
        direct = _count_direct(patch)
        answers = _store_all(deliveries[:3])
        connection.close()
        answers += _store_all(deliveries[3:])

    assert (answers, _rows()) == (old_answers, old_rows)
    assert None not in direct
    assert connections["default"].__dict__[inbox._DIRECT_STATE][0] is connection.connection


def test_numbered_statement_numbers_the_six_placeholders_in_order():
    sql = inbox._raw_insert_statement()
    numbered = inbox._numbered_insert_statement().decode()
    assert sql.count("%s") == 6 and "%" not in numbered
    for i in range(1, 7):
        sql = sql.replace("%s", f"${i}", 1)
    assert numbered == sql
