"""The inbox: accept fast, process later, lose nothing, never apply anything twice.

``store_event`` (plugin hooks, backfill: a translated event) and ``store_webhook`` (the App's
webhook: the raw body, translated only when a worker claims it) are all an adapter does in
Saleor's request path: one INSERT guarded by the unique dedupe key, then a Celery kick after
commit. Workers claim pending rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` in batches, so any number of workers can drain the inbox
without coordination, and a broker outage only delays processing: the periodic sweep (and
``saleor-crm replay-inbox``) picks up whatever is still pending.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    models,
    transaction,
)
from django.db.models import F, Q
from django.utils import timezone

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core import gate
from saleor_crm_plugin.core.bulk import array_param
from saleor_crm_plugin.core.compat import on_psycopg3
from saleor_crm_plugin.core.privacy import email_hash
from saleor_crm_plugin.core.rows import RowReader, c_timestamps
from saleor_crm_plugin.customers import batch, projection
from saleor_crm_plugin.events.exceptions import PayloadError, UnsupportedEvent
from saleor_crm_plugin.events.from_webhook import translate_stored_webhook
from saleor_crm_plugin.events.handlers import (
    handle_domain_event,
    handle_domain_events,
    project,
)
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from saleor_crm_plugin.events.types import CrmEvent

logger = logging.getLogger(__name__)

KICK_CACHE_KEY = "saleor_crm_plugin:inbox-kick"
REDACTED_PAYLOAD = {"redacted": True}
# ``source`` of a row the webhook stored untranslated; the worker replaces it with the payload
# style it found (subscription or legacy) when it translates the body.
WEBHOOK_SOURCE = "webhook"


def store_event(event: CrmEvent, *, kick: bool = True) -> InboxEvent | None:
    """Insert the event unless its dedupe key is known. Returns the new row, or ``None`` for a
    duplicate. Processing is enqueued after the surrounding transaction commits."""
    if not event.dedupe_key:
        raise ValueError("An event needs a dedupe key before it can be stored.")
    row = InboxEvent(
        dedupe_key=event.dedupe_key,
        kind=event.kind.value,
        source=event.source.value,
        saleor_api_url=event.saleor_api_url,
        object_id=event.object_id,
        issued_at=event.issued_at,
        payload=event.to_dict(),
        subject_user_id=event.subject_user_id or "",
        subject_email_hash=email_hash(event.subject_email),
    )
    if not _insert_unless_known(row):
        return None
    if kick:
        transaction.on_commit(enqueue_processing)
    return row


def _insert_unless_known(row: InboxEvent) -> bool:
    """One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` statement: in Saleor's request path
    (autocommit) that is a single round trip, where ``save()`` in a savepoint took three, and a
    duplicate costs no error. Both PostgreSQL and SQLite (3.35+) understand it.

    On PostgreSQL with psycopg 3 the statement goes through a server-side-binding cursor on
    Django's connection (same transaction, same error translation): Django's default cursor
    binds on the client, quoting every value (the whole JSON payload) into the SQL text in
    Python. It is prepared once per connection when the database
    ``OPTIONS`` enable ``prepare_threshold`` (off by default, for connection poolers)."""
    db = connections[connection.alias]  # resolved once, not per field through the proxy
    sql, fields = _insert_statement(db.vendor)
    for f in fields:
        if getattr(row, f.attname) is None and f.has_default():
            setattr(row, f.attname, f.get_default())
    params = [f.get_db_prep_save(getattr(row, f.attname), db) for f in fields]
    if db.vendor == "postgresql" and on_psycopg3():
        inserted = _execute_server_bound(db, sql, params)
    else:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            inserted = cursor.fetchone()
    if inserted is None:
        return False
    row.pk = inserted[0]
    row._state.adding = False
    return True


@functools.cache
def _insert_statement(vendor: str) -> tuple[str, tuple[models.Field[Any, Any], ...]]:
    """The insert's SQL and columns, built once per database vendor instead of per request."""
    meta = InboxEvent._meta
    quote = connection.ops.quote_name
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({quote(meta.get_field('dedupe_key').column)}) DO NOTHING "
        f"RETURNING {quote(meta.pk.column)}"
    )
    return sql, fields


def _execute_server_bound(
    db: Any,
    sql: str,
    params: list[Any],
    *,
    fetch: bool = True,
    reuse: bool = False,
    direct: bool = False,
) -> Any:
    """Run ``sql`` with server-side binding on Django's connection; the first row it returns
    when ``fetch``, else how many rows it wrote (the cursor's rowcount).

    ``reuse``: run it on a psycopg cursor kept for the connection (the acknowledgement's one
    INSERT per request) instead of a new one: a cursor and its adapters map cost ~1% of an
    ack. A new connection (Django reconnects after ``CONN_MAX_AGE``) gets a new cursor.

    ``direct`` (``sql`` is :func:`_raw_insert_statement`, not fetched): first through
    :func:`_insert_prepared_directly`, the cursor only when that does not apply or fails."""
    db.ensure_connection()
    db.validate_no_broken_transaction()
    if direct:
        written = _insert_prepared_directly(db, params)
        if written is not None:
            return written
    if reuse:
        raw = db.connection
        cached = db.__dict__.get("_crm_ack_cursor")
        if cached is not None and cached[0] is raw and not cached[1].closed:
            cursor = cached[1]
        else:
            cursor = _psycopg_cursor(raw)
            db.__dict__["_crm_ack_cursor"] = (raw, cursor)
        with db.wrap_database_errors:
            cursor.execute(sql, params)
            return cursor.fetchone() if fetch else cursor.rowcount
    with db.wrap_database_errors, _psycopg_cursor(db.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if fetch else cursor.rowcount


def store_webhook(
    *, dedupe_key: str, kind: str, saleor_api_url: str, raw_body: str, kick: bool = True
) -> bool:
    """Store a signed webhook delivery as Saleor sent it, untranslated: the acknowledgement
    needs nothing from the body but its hash (the dedupe key), so parsing it, building the
    ``CrmEvent`` and encoding it as JSON (a third of the ack's CPU, plus PostgreSQL's JSONB
    input) wait for the worker, which has to read the row anyway. ``payload`` stays empty
    and the subject columns are filled when the row is translated. Returns ``False`` for a
    duplicate delivery."""
    # ``connection`` is the default alias's proxy: asking it for ``alias`` and then
    # ``transaction.on_commit`` each look the wrapper up again in the per-thread ``connections``.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql" and _on_psycopg3():
        now = timezone.now()
        params = [dedupe_key, kind, saleor_api_url, raw_body, now, now]
        # ``ON CONFLICT DO NOTHING`` writes one row or, for a duplicate, none: the rowcount
        # says which, so the statement returns nothing (the ack never needed the id).
        # In autocommit the insert's round trip includes its commit, which waits for
        # PostgreSQL's WAL flush (1.5-2.5 ms on the benchmark machines, against ~0.5 ms of
        # CPU for the whole acknowledgement): the process's other request threads run
        # meanwhile (``core/gate.py``), as they do while a request waits on Saleor.
        with gate.released():
            inserted = (
                _execute_server_bound(
                    db, _raw_insert_statement(), params, fetch=False, reuse=True, direct=True
                )
                == 1
            )
    else:
        row = InboxEvent(
            dedupe_key=dedupe_key,
            kind=kind,
            source=WEBHOOK_SOURCE,
            saleor_api_url=saleor_api_url,
            raw_body=raw_body,
        )
        inserted = _insert_unless_known(row)
    if not inserted:
        return False
    if kick:
        if db.in_atomic_block or not db.autocommit:
            # What ``transaction.on_commit`` calls, on this alias: queued for the commit (or
            # Django's error for manual transaction management).
            db.on_commit(enqueue_processing)
        else:
            # What ``on_commit`` does in autocommit, without its ``ensure_connection`` (and its
            # event-loop check, an exception raised and caught), which the insert just made.
            enqueue_processing()
    return True


# What the direct INSERT remembers per Django connection wrapper (``db.__dict__``, as the kept
# cursor): the psycopg connection it was prepared on, the parameter types it was prepared with
# and a ``Transformer`` of that connection's adapters.
_DIRECT_STATE = "_crm_ack_direct"
# psycopg's own prepared statements are named ``_pg3_<n>``; this one cannot collide with them.
_DIRECT_NAME = b"crm_ack_webhook_insert"
_COMMAND_OK = 1  # ``psycopg.pq.ExecStatus.COMMAND_OK``
_IDLE = 0  # ``psycopg.pq.TransactionStatus.IDLE`` (and ``PipelineStatus.OFF``)
_SQLSTATE = ord("C")  # ``psycopg.pq.DiagnosticField.SQLSTATE``
_UNDEFINED_PREPARED = b"26000"  # invalid_sql_statement_name: no such prepared statement
_DUPLICATE_PREPARED = b"42P05"
_DEALLOCATE = b'DEALLOCATE "' + _DIRECT_NAME + b'"'


def _insert_prepared_directly(db: Any, params: list[Any]) -> int | None:
    """The acknowledgement's INSERT through libpq's ``PQexecPrepared`` (psycopg's public
    ``Connection.pgconn``), or ``None`` when it was not sent or did not succeed, for the
    caller to run it through a psycopg cursor as before.

    ``Cursor.execute`` was ~116k instructions per acknowledgement for one six-parameter
    statement, nearly all of it Python around libpq: the query's conversion and prepared-
    statement bookkeeping, the generators that drive the non-blocking protocol, the result
    checks. Here the parameters are dumped by psycopg's own ``Transformer`` over the
    connection's adapters (the same bytes, formats and types the cursor sends), the
    statement is prepared once per connection under its own name, and the blocking libpq
    call releases the GIL while it waits, as the cursor's wait did.

    Only in the plain case: psycopg in autocommit, idle (no transaction, so nothing for
    psycopg to begin), not in pipeline mode, prepared statements allowed
    (``prepare_threshold`` is not ``None``: PgBouncer's transaction pooling sets it so).
    Anything else, including any failure (a statement dropped by ``DEALLOCATE ALL`` or
    ``DISCARD ALL``, a broken connection, a server error), answers ``None``: a failed
    statement in autocommit wrote nothing, and the cursor then runs it again and raises
    what it always raised. The next call prepares again."""
    import psycopg

    raw = db.connection  # connected by ``_execute_server_bound``
    try:
        pgconn = raw.pgconn
        if (
            not raw.autocommit
            or raw.prepare_threshold is None
            or pgconn.transaction_status != _IDLE
            or pgconn.pipeline_status != _IDLE
        ):
            return None
        state = db.__dict__.get(_DIRECT_STATE)
        if state is None or state[0] is not raw:
            state = db.__dict__[_DIRECT_STATE] = [raw, None, *_transformer(raw)]
        transformer = state[2]
        values = transformer.dump_sequence(params, state[3])
        types = transformer.types
        with raw.lock:
            if state[1] != types and not _prepare_direct(pgconn, state, types):
                return None
            result = pgconn.exec_prepared(_DIRECT_NAME, values, transformer.formats)
    except psycopg.Error:
        db.__dict__.pop(_DIRECT_STATE, None)
        return None
    if result.status != _COMMAND_OK:
        if result.error_field(_SQLSTATE) == _UNDEFINED_PREPARED:
            state[1] = None  # ``DEALLOCATE ALL`` or ``DISCARD ALL``: prepared again next time
        return None
    return result.command_tuples  # type: ignore[no-any-return]


def _prepare_direct(pgconn: Any, state: list[Any], types: Any) -> bool:
    """Prepare the direct INSERT for ``types`` on ``pgconn`` (``state[1]`` says what was
    prepared there before: ``None`` for nothing known), replacing a statement of the same
    name left on the server (types that changed, or a state forgotten after an error)."""
    if state[1] is not None:
        pgconn.exec_(_DEALLOCATE)
    state[1] = None
    prepared = pgconn.prepare(_DIRECT_NAME, _numbered_insert_statement(), types)
    if prepared.status != _COMMAND_OK and prepared.error_field(_SQLSTATE) == _DUPLICATE_PREPARED:
        pgconn.exec_(_DEALLOCATE)
        prepared = pgconn.prepare(_DIRECT_NAME, _numbered_insert_statement(), types)
    if prepared.status != _COMMAND_OK:
        return False
    state[1] = types
    return True


def _transformer(raw: Any) -> tuple[Any, list[Any]]:
    """A ``Transformer`` over ``raw``'s adapters and the formats psycopg asks of it for
    ``%s`` placeholders (``PyFormat.AUTO``), imported here: plugin mode may run psycopg2."""
    from psycopg.adapt import PyFormat, Transformer

    return Transformer(raw), [PyFormat.AUTO] * 6


@functools.cache
def _numbered_insert_statement() -> bytes:
    """:func:`_raw_insert_statement` with libpq's ``$n`` placeholders, as psycopg converts
    its ``%s`` for a server-side binding."""
    parts = _raw_insert_statement().split("%s")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
    return numbered.encode()


# The driver does not change while the process runs; ``on_psycopg3`` imports on each call.
_on_psycopg3 = functools.cache(on_psycopg3)


def _psycopg_cursor(raw: Any) -> Any:
    """A server-side-binding cursor on ``raw``. psycopg is imported here rather than at the
    top (plugin mode may run on psycopg2, ``on_psycopg3``), and only when a cursor is made:
    the acknowledgement reuses its cursor, and an import statement costs even when the
    module is loaded (~1,000 instructions)."""
    import psycopg

    return psycopg.Cursor(raw)


@functools.cache
def _raw_insert_statement() -> str:
    """``_insert_unless_known``'s statement for a raw webhook row, with every column the ack
    does not know written as its default in the SQL: no model instance and no per-field
    conversion in the request path (six plain values are bound), and no ``RETURNING``: the
    rowcount tells a stored delivery from a duplicate. A column added to the model must be
    added here too; ``tests/app/test_webhook_ack.py`` compares the two."""
    meta = InboxEvent._meta
    quote = connection.ops.quote_name
    given = ("dedupe_key", "kind", "saleor_api_url", "raw_body", "received_at", "available_at")
    constants = {
        "source": f"'{WEBHOOK_SOURCE}'",
        "object_id": "''",
        "issued_at": "NULL",
        "payload": "'{}'::jsonb",
        "status": f"'{InboxStatus.PENDING.value}'",
        "attempts": "0",
        "last_error": "''",
        "processed_at": "NULL",
        "subject_user_id": "''",
        "subject_email_hash": "''",
    }
    columns = [meta.get_field(name).column for name in (*given, *constants)]
    values = ["%s"] * len(given) + list(constants.values())
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(values)}) "
        f"ON CONFLICT ({quote(meta.get_field('dedupe_key').column)}) DO NOTHING"
    )


def store_invalid(
    *, dedupe_key: str, kind: str, source: str, saleor_api_url: str, raw_body: str, error: str
) -> None:
    """Keep a signed but unreadable delivery for diagnosis instead of dropping it."""
    row = InboxEvent(
        dedupe_key=dedupe_key,
        kind=kind,
        source=source,
        saleor_api_url=saleor_api_url,
        raw_body=raw_body,
        status=InboxStatus.INVALID,
        last_error=error,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        pass


def enqueue_processing() -> None:
    """Ask a worker to drain the inbox. Broker trouble is logged, never raised: the rows are
    committed and the sweep will find them.

    With coalescing on, a cache key marks "a drain is already queued": requests arriving while
    it is set send nothing, and the drain clears the key before it looks for rows (and looks
    once more after clearing it at the end), so no committed row is ever left without a drain.
    The key's expiry (``_kick_ttl``) only matters if a worker dies holding it.
    """
    coalesce, ttl = _kick_window()
    if coalesce > 0 and not _claim_kick(ttl):
        return
    # Imported here (the tasks import this module), and only once a kick is to be sent: most
    # acknowledgements find a drain already queued.
    from saleor_crm_plugin.tasks.ingest import process_inbox_task

    try:
        process_inbox_task.delay()
    except Exception:  # broad by design: Saleor's request must not fail because of us
        logger.warning("Could not enqueue inbox processing; the sweep will retry.", exc_info=True)


def _kick_ttl() -> int:
    """Whole seconds, at least 1, and longer than a kicked drain lingers with the key set:
    were it to expire meanwhile, every row committed after that would queue a drain of its
    own, which would linger beside this one and split its batch."""
    coalesce = crm_settings.INBOX_KICK_COALESCE_SECONDS
    linger = crm_settings.INBOX_LINGER_SECONDS
    return max(1, math.ceil(coalesce), math.ceil(linger) + 1)


def _kick_window() -> tuple[float, int]:
    """``(INBOX_KICK_COALESCE_SECONDS, _kick_ttl())`` for the current settings, remembered
    with them (``crm_settings.derived``): every acknowledged delivery reads them, and four
    setting reads, ``ceil`` and ``max`` were ~10,000 instructions of the ~90,000 its kick
    costs."""
    return crm_settings.derived("inbox_kick_window", _read_kick_window)


def _read_kick_window() -> tuple[float, int]:
    return crm_settings.INBOX_KICK_COALESCE_SECONDS, _kick_ttl()


def _claim_kick(timeout: int) -> bool:
    """``cache.add`` of the kick key; the App's Redis cache sends it as one pre-encoded
    command (``add_flag``), any other cache (plugin mode: Saleor's) through ``add``."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    add_flag = getattr(backend, "add_flag", None)
    if add_flag is not None:
        return bool(add_flag(KICK_CACHE_KEY, timeout))
    return bool(backend.add(KICK_CACHE_KEY, 1, timeout=timeout))


def process_pending(*, batch_size: int | None = None, max_events: int | None = None) -> int:
    """Drain pending events in batches; returns how many rows were handled (ok or failed)."""
    coalescing = crm_settings.INBOX_KICK_COALESCE_SECONDS > 0
    if coalescing:
        # Rows committed after this point send a new kick, so none is left behind.
        cache.delete(KICK_CACHE_KEY)
    size = batch_size or crm_settings.INBOX_BATCH_SIZE
    total = 0
    while max_events is None or total < max_events:
        handled = _process_batch(size if max_events is None else min(size, max_events - total))
        total += handled
        if handled:
            continue
        if not coalescing:
            break
        # A request may have committed a row without kicking while the key was set; clear the
        # key, then look once more: anything committed after this sends its own kick.
        cache.delete(KICK_CACHE_KEY)
        if not _unclaimed_exists():
            break
    return total


# Between two looks at the inbox while a kicked drain lingers: short enough to claim soon
# after the batch fills or its oldest event reaches the linger, long enough that the look
# (one indexed query) costs nothing next to a batch.
_LINGER_POLL_SECONDS = 0.03


def process_kicked() -> int:
    """The kicked drain (the Celery task): ``process_pending`` that waits for a batch to fill.

    Under a live stream a drain that claims at once takes what arrived since the last one,
    a few events, and every batch has a fixed cost (projection and loyalty statements,
    commit, claim): per event the worker spent half as much again as on full batches. So,
    while the kick key is still set (rows committed meanwhile send no kick, this drain will
    claim them), it waits until a batch of rows is available or the oldest has waited
    ``CRM_INBOX_LINGER_SECONDS``, then clears the key (rows committed from then on kick a
    new drain, which lingers while this one works) and drains until a batch comes back
    short, instead of draining the next few events at once.

    It then takes the key back: if a request set it meanwhile, a drain is queued or
    lingering that will claim after this moment, so everything committed is covered and this
    one stops. Otherwise this drain is that drain, for rows nobody has claimed (rows another
    drain holds are that drain's); with none, it clears the key, looks once more and stops.
    """
    size = crm_settings.INBOX_BATCH_SIZE
    linger = crm_settings.INBOX_LINGER_SECONDS
    coalescing = crm_settings.INBOX_KICK_COALESCE_SECONDS > 0
    ttl = _kick_ttl()
    total = 0
    while True:
        if linger > 0:
            if coalescing:
                _claim_kick(ttl)  # a retry or sweep task comes without a key: hold it
            _linger(size, linger)
        if coalescing:
            cache.delete(KICK_CACHE_KEY)
        while True:
            handled = _process_batch(size)
            total += handled
            if handled < size:
                break
        if not coalescing:
            # Each row committed meanwhile queued a drain of its own; rows this drain's
            # batches left to others (contention) are still this drain's to see to.
            if not _unclaimed_exists():
                return total
            continue
        if not _claim_kick(ttl):
            return total
        if _unclaimed_exists():
            continue
        cache.delete(KICK_CACHE_KEY)
        if not _unclaimed_exists() or not _claim_kick(ttl):
            return total


def _linger(size: int, linger: float) -> None:
    """Wait while fewer than ``size`` unclaimed rows are available and the oldest of them
    has waited less than ``linger`` seconds; return at once when there is none."""
    deadline = timezone.now() + timedelta(seconds=linger)
    while True:
        count, waited, any_unclaimed = _linger_probe(size)
        if not any_unclaimed:
            return
        if count >= size or waited >= linger:
            # The rows in view may include another drain's claimed batch: only the locking
            # count can tell whether the unclaimed ones fill a batch or waited long enough.
            count, waited = _unclaimed_batch(size)
            if count == 0 or count >= size or waited >= linger:
                return
        pause = min(_LINGER_POLL_SECONDS, linger - waited)
        if timezone.now() + timedelta(seconds=pause) > deadline:
            return
        time.sleep(pause)


def _available() -> models.QuerySet[InboxEvent]:
    return InboxEvent.objects.filter(status=InboxStatus.PENDING, available_at__lte=timezone.now())


def _unclaimed_exists() -> bool:
    """Whether an available row is left that no drain has claimed. Rows another drain holds
    are that drain's to finish (or to leave pending and look for itself); counting them made
    two drains poll each other's batches until they committed."""
    if connection.vendor != "postgresql":  # no SKIP LOCKED (the demo's SQLite: one drain)
        return _available().exists()
    with connection.cursor() as cursor:
        cursor.execute(_unclaimed_exists_statement(_own_transaction()), [timezone.now()])
        return bool(cursor.fetchone()[0])


@functools.cache
def _unclaimed_exists_statement(own_transaction: bool) -> str:
    return f"SELECT EXISTS({_unclaimed_statement('LIMIT 1')}){_relaxed(own_transaction)}"


def _unclaimed_batch(size: int) -> tuple[int, float]:
    """How many available rows no drain has claimed, up to ``size``, and how long the oldest
    of them has waited (seconds, 0 with none)."""
    if connection.vendor != "postgresql":
        return 0, 0.0  # no lingering without SKIP LOCKED: another drain's batch would count
    now = timezone.now()  # the clock ``_process_batch`` claims by
    with connection.cursor() as cursor:
        cursor.execute(_unclaimed_batch_statement(_own_transaction()), [now, now, size])
        count, waited = cursor.fetchone()[:2]
    return int(count), float(waited)


@functools.cache
def _unclaimed_batch_statement(own_transaction: bool) -> str:
    return (
        "SELECT count(*), coalesce(extract(epoch FROM %s - min(available_at)), 0)"
        f"{_relaxed(own_transaction)} FROM ({_unclaimed_statement('LIMIT %s')}) AS unclaimed"
    )


def _own_transaction() -> bool:
    """Whether a look runs as a transaction of its own (autocommit, as ``process_kicked``
    runs it), whose commit only releases the row locks it took."""
    return not connection.in_atomic_block


def _relaxed(own_transaction: bool) -> str:
    """A select-list item that turns off ``synchronous_commit`` for the look's own
    transaction (``set_config(..., true)``: that transaction only, no extra round trip).

    A look that finds rows locks them (``FOR KEY SHARE``), which gives its transaction an id
    and WAL records, so its commit waited for a WAL flush like any write: measured on the
    benchmark machine (docs/benchmarks.md, "Inbox writes"), 3-5 ms of wall clock per look
    against 0.5-1.2 ms without the wait, and 20-50% less backend CPU where the commit is
    most of a look; a lingering drain looks ~16 times per batch. Nothing
    else is in that transaction, so a commit lost in a server crash loses only row locks
    that ended with the crash anyway. Inside a caller's transaction (``in_atomic_block``)
    the setting would cover the caller's writes too, so it is left alone there."""
    return ", set_config('synchronous_commit', 'off', true)" if own_transaction else ""


def _linger_probe(size: int) -> tuple[int, float, bool]:
    """One look of the linger: how many available rows there are, claimed or not (up to
    ``size``), how long the oldest of them has waited, and whether any is unclaimed.

    The counting does not lock: ``_unclaimed_batch`` takes a key-share lock on every row it
    counts (up to a batch, ~16 looks per batch), and those row locks were most of what a
    lingering drain cost PostgreSQL. The rows in view bound the unclaimed ones from above
    (more of them, the oldest as old or older), so while they neither fill a batch nor waited
    the linger, the only question left is whether any is unclaimed, which locks one row.
    Otherwise ``_linger`` asks ``_unclaimed_batch``, so it decides exactly as before."""
    if connection.vendor != "postgresql":
        return 0, 0.0, False  # no lingering without SKIP LOCKED, as in ``_unclaimed_batch``
    now = timezone.now()  # the clock ``_process_batch`` claims by
    with connection.cursor() as cursor:
        cursor.execute(_linger_probe_statement(_own_transaction()), [now, now, now, size])
        count, waited, any_unclaimed = cursor.fetchone()[:3]
    return int(count), float(waited), bool(any_unclaimed)


@functools.cache
def _linger_probe_statement(own_transaction: bool = True) -> str:
    meta = InboxEvent._meta
    quote = connection.ops.quote_name
    status = quote(meta.get_field("status").column)
    available = quote(meta.get_field("available_at").column)
    visible = (
        f"SELECT {available} AS available_at FROM {quote(meta.db_table)} "
        f"WHERE {status} = '{InboxStatus.PENDING.value}' AND {available} <= %s "
        f"ORDER BY {available}, {quote(meta.pk.column)} LIMIT %s"
    )
    return (
        "SELECT count(*), coalesce(extract(epoch FROM %s - min(available_at)), 0), "
        f"EXISTS({_unclaimed_statement('LIMIT 1')}){_relaxed(own_transaction)} "
        f"FROM ({visible}) AS visible"
    )


@functools.cache
def _unclaimed_statement(limit: str) -> str:
    """Available rows, oldest first, skipping those a drain has claimed (``FOR UPDATE``):
    ``FOR KEY SHARE`` is the weakest row lock, which conflicts with nothing else."""
    meta = InboxEvent._meta
    quote = connection.ops.quote_name
    status = quote(meta.get_field("status").column)
    available = quote(meta.get_field("available_at").column)
    return (
        f"SELECT {available} AS available_at FROM {quote(meta.db_table)} "
        f"WHERE {status} = '{InboxStatus.PENDING.value}' AND {available} <= %s "
        f"ORDER BY {available}, {quote(meta.pk.column)} {limit} FOR KEY SHARE SKIP LOCKED"
    )


# What processing never reads of a claimed row (the payload, or the raw body with its kind,
# Saleor URL and dedupe key, says it all): not loading them spares a datetime parse or a
# string per column and row. ``raw_body`` is loaded: it is empty on translated rows.
_NOT_NEEDED_TO_PROCESS = (
    "source",
    "object_id",
    "issued_at",
    "received_at",
    "processed_at",
)


# The claim, read without the ORM (``core.rows``): the same rows, columns and locks, without
# compiling the queryset and running ``Model.__init__`` for each of a batch's rows.
_CLAIM = RowReader(InboxEvent)
_CLAIMED_COLUMNS = frozenset(
    f.attname for f in InboxEvent._meta.concrete_fields if f.name not in _NOT_NEEDED_TO_PROCESS
)


def _claim(size: int, now: datetime) -> list[InboxEvent]:
    """Up to ``size`` available pending rows, oldest first, locked; rows another drain holds
    are skipped (``FOR UPDATE SKIP LOCKED``)."""
    return _CLAIM.fetch(
        "t.status = %s AND t.available_at <= %s",
        # As the queryset bound it (SQLite stores naive UTC text; PostgreSQL takes it as is).
        [InboxStatus.PENDING.value, connection.ops.adapt_datetimefield_value(now)],
        order_by="t.available_at, t.id",
        limit=size,
        only=_CLAIMED_COLUMNS,
        for_update=True,
        skip_locked=True,
    )


def _process_batch(size: int) -> int:
    # The batch's ORM reads load timestamps with psycopg's C loader when it gives the same
    # values as Django's (``core.rows.c_timestamps``): ~4 per event in Python otherwise.
    with connection.execute_wrapper(c_timestamps):
        return _process_claimed_batch(size)


def _process_claimed_batch(size: int) -> int:
    now = timezone.now()
    own_transaction = _own_transaction()
    with transaction.atomic():
        if own_transaction:
            _commit_without_flush_wait()
        rows = _claim(size, now)
        if not rows:
            return 0
        work: list[tuple[InboxEvent, CrmEvent]] = []
        translated: set[int] = set()
        known = _left_for_later.copy()
        _left_for_later.clear()
        for row in rows:
            row.attempts += 1
            payload = row.payload
            if payload.get("redacted"):
                _mark_done(row)
                continue
            try:
                if not payload and row.raw_body:
                    event = known.get(row.pk)
                    if event is None:
                        event = translate_stored_webhook(
                            row.kind, row.raw_body, row.saleor_api_url, row.dedupe_key
                        )
                    _note_translation(row, event)
                    translated.add(row.pk)
                else:
                    event = known.get(row.pk)
                    if event is None:
                        event = CrmEvent.from_dict(payload)
            except (PayloadError, UnsupportedEvent) as exc:
                # Signed by Saleor but unreadable: Saleor would only send the same bytes
                # again and so would a retry here; kept for diagnosis, out of the queue.
                _mark_invalid(row, exc)
                continue
            except Exception as exc:  # a payload we can no longer read must not block others
                _mark_failed(row, exc)
                continue
            work.append((row, event))
        work, deferred = _leave_contended(work)
        _left_for_later.update({row.pk: event for row, event in deferred})
        # Pass 1: the projection, in an order that makes concurrent workers take row locks in
        # the same sequence (fewer deadlocks), with aggregates recomputed once for the batch.
        work.sort(key=lambda item: _lock_order_key(item[1]))
        projected: list[tuple[InboxEvent, CrmEvent]] = []
        with projection.deferred_stats():
            if batch.apply_batch([event for _, event in work]):
                projected = work
            else:
                for row, event in work:
                    if _run(row, project, event):
                        projected.append((row, event))
        # Pass 2: the domains, which now see every order of the batch: set-wise for the whole
        # batch, or event by event (isolating a failing event) if that fails.
        if _run_domains_in_bulk([event for _, event in projected]):
            for row, _ in projected:
                _mark_done(row)
        else:
            for row, event in projected:
                if _run(row, handle_domain_event, event):
                    _mark_done(row)
        if deferred:
            left = {row.pk for row, _ in deferred}
            rows = [row for row in rows if row.pk not in left]
        _save_outcomes(rows, translated)
        _redact_erased(rows)
        retry_at = min(
            (r.available_at for r in rows if r.status == InboxStatus.PENDING), default=None
        )
    if retry_at is not None:
        _schedule_retry(retry_at)
    return len(rows)


def _commit_without_flush_wait() -> None:
    """``SET LOCAL synchronous_commit = off`` for the batch's transaction (PostgreSQL): its
    commit returns once the commit record is in the WAL buffers, and the WAL writer flushes
    it within ``3 x wal_writer_delay`` (600 ms by default) instead of the worker waiting for
    the disk (~4 ms on the benchmark machine, with the batch's locks held meanwhile).

    Safe because of what the transaction holds and what a loss means. Its whole work (the
    projection, loyalty and write-back rows, the inbox rows' outcomes) commits or is lost
    together: only a PostgreSQL crash can lose an acknowledged asynchronous commit, WAL is
    replayed in order, and a later synchronous commit (any acknowledgement's insert) flushes
    everything before it, so what is lost is always the newest transactions, whole. The
    inbox rows of a lost batch are then still ``pending`` (their insert was committed
    synchronously by the acknowledgement, which this never applies to) and the sweep or the
    next drain processes them again, which event handling allows by design (the projection
    keeps the newest version per key, loyalty reconciles an order idempotently): the same
    outcome as a worker that died before committing. No transaction that could have read the
    lost batch's rows can outlive it (its commit record comes later in the WAL); only readers
    outside PostgreSQL (a GraphQL answer, a write-back to Saleor) may have seen what the
    reprocessing then writes again. Never used for the acknowledgement's insert: a delivery
    answered 200 must survive a crash, Saleor will not send it again. Only for a batch that
    is its own transaction: inside a caller's (an eager task in a request, plugin mode in
    Saleor's transaction) ``SET LOCAL`` would last until the caller's commit and cover the
    caller's writes too."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def _leave_contended(
    work: list[tuple[InboxEvent, CrmEvent]],
) -> tuple[list[tuple[InboxEvent, CrmEvent]], list[tuple[InboxEvent, CrmEvent]]]:
    """Split off the events whose order or customer another worker's open batch holds.

    Two batches claimed from the same stream almost always share a customer or an order (a
    quarter of the events of consecutive batches of 500 from the UCI stream), and the
    projection's subject locks made the second batch wait for the first to commit: the two
    pool processes of a worker took turns instead of running side by side. Events that would
    wait are instead left pending, untouched (their row locks end with this transaction), and
    the next claim, this worker's or another's, takes them first (they are the oldest). When
    every event would wait, the batch waits as before, so a worker always makes progress
    and never spins on rows it cannot take."""
    if len(work) < 2:
        return work, []
    free = batch.try_lock_subjects([event for _, event in work])
    if all(free) or not any(free):
        return work, []
    kept = [item for item, ok in zip(work, free, strict=True) if ok]
    return kept, [item for item, ok in zip(work, free, strict=True) if not ok]


# What this process translated of the rows its last batch left pending (``_leave_contended``),
# by row id: the next claim, which takes those rows first, does not translate them again. A
# pending row never changes (redaction skips pending rows), so an entry is valid as long as its
# row is pending; entries of rows another worker took are dropped at the next batch.
_left_for_later: dict[int, CrmEvent] = {}


def _note_translation(row: InboxEvent, event: CrmEvent) -> None:
    """Note on a webhook row the acknowledgement stored raw what the ack could not know
    without parsing: the object, the issue time, the payload style and who the event is about
    (saved with the row's outcome, so a GDPR erasure finds the row)."""
    row.source = event.source.value
    row.object_id = event.object_id[:255]
    row.issued_at = event.issued_at
    row.subject_user_id = (event.subject_user_id or "")[:255]
    row.subject_email_hash = email_hash(event.subject_email)


# Columns a translation fills on a raw row, saved with the row's outcome.
_TRANSLATED_COLUMNS = ("source", "object_id", "issued_at", "subject_user_id", "subject_email_hash")


def _save_outcomes(
    rows: list[InboxEvent], translated: set[int] | frozenset[int] = frozenset()
) -> None:
    """Record what happened to each row. Almost all rows end ``done`` at the same moment: one
    UPDATE covers those stored translated and one those the worker translated, which also
    fills their subject columns from per-row arrays (``bulk_update`` would build a CASE per
    row and column, which cost more than processing the events)."""
    now = timezone.now()
    done = [r for r in rows if r.status == InboxStatus.DONE and r.pk not in translated]
    if done:
        InboxEvent.objects.filter(pk__in=[r.pk for r in done]).update(
            status=InboxStatus.DONE,
            attempts=F("attempts") + 1,
            last_error="",
            processed_at=now,
        )
    done_translated = [r for r in rows if r.status == InboxStatus.DONE and r.pk in translated]
    if done_translated:
        _save_translated_done(done_translated, now)
    for row in rows:
        if row.status != InboxStatus.DONE:
            values: dict[str, Any] = {
                "status": row.status,
                "attempts": row.attempts,
                "last_error": row.last_error,
                "available_at": row.available_at,
            }
            if row.pk in translated:
                values.update({name: getattr(row, name) for name in _TRANSLATED_COLUMNS})
            InboxEvent.objects.filter(pk=row.pk).update(**values)


def _save_translated_done(rows: list[InboxEvent], now: datetime) -> None:
    db = connections[connection.alias]
    if db.vendor != "postgresql":  # the demo's SQLite: a row at a time is fast enough there
        for row in rows:
            InboxEvent.objects.filter(pk=row.pk).update(
                status=InboxStatus.DONE,
                attempts=F("attempts") + 1,
                last_error="",
                processed_at=now,
                **{name: getattr(row, name) for name in _TRANSLATED_COLUMNS},
            )
        return
    params = [
        now,
        array_param([r.pk for r in rows]),
        *(array_param([getattr(r, name) for r in rows]) for name in _TRANSLATED_COLUMNS),
    ]
    if on_psycopg3():
        _execute_server_bound(db, _translated_done_statement(), params, fetch=False)
    else:
        with db.cursor() as cursor:
            cursor.execute(_translated_done_statement(), params)


@functools.cache
def _translated_done_statement() -> str:
    """The batch's ``done`` UPDATE of rows the worker translated, joined by id to per-row
    arrays that are sub-selects (``unnest((SELECT %s::bigint[]), ...)``), not the bound
    arrays themselves.

    Why: with the arrays bound as constants (a custom plan: psycopg's first executions on a
    connection, PostgreSQL's first five of a prepared statement, every execution when
    ``DATABASE_PREPARE_THRESHOLD`` is off) the planner knew the batch's 500 rows and priced a
    hash join over a sequential scan of the whole inbox below 500 primary key look-ups while
    the table held fewer than ~20,000 rows: it read every row of the retention window to
    update 500 (159k PostgreSQL instructions per row on an 8,000-row inbox, against 132k by
    the primary key). A sub-select's value is unknown when planning, so every plan is the
    one a generic plan already was, a nested loop of primary key look-ups, whatever the
    table's size (docs/benchmarks.md, "The inbox's done UPDATE planned by the primary key").
    The same rows and values: only where the arrays come from changed."""
    meta = InboxEvent._meta
    quote = connection.ops.quote_name
    column = {f.attname: quote(f.column) for f in meta.concrete_fields}
    types = {"issued_at": "timestamptz[]"}
    arrays = ", ".join(f"(SELECT %s::{types.get(name, 'text[]')})" for name in _TRANSLATED_COLUMNS)
    names = ", ".join(_TRANSLATED_COLUMNS)
    assignments = ", ".join(f"{column[name]} = v.{name}" for name in _TRANSLATED_COLUMNS)
    return (
        f"UPDATE {quote(meta.db_table)} AS t SET {column['status']} = 'done', "
        f"{column['attempts']} = t.{column['attempts']} + 1, {column['last_error']} = '', "
        f"{column['processed_at']} = %s, {assignments} "
        f"FROM unnest((SELECT %s::bigint[]), {arrays}) AS v(id, {names}) "
        f"WHERE t.{quote(meta.pk.column)} = v.id"
    )


def _lock_order_key(event: CrmEvent) -> tuple[str, str]:
    order = event.order
    customer = event.customer
    who = (order.user_id or order.user_email) if order else ""
    if customer is not None:
        who = customer.saleor_user_id or customer.email or ""
    return (who or "", order.saleor_order_id if order else "")


# PostgreSQL's answers that mean "try the same thing again": another worker held the rows.
_TRANSIENT_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure
_TRANSIENT_RETRIES = 3


def _run(row: InboxEvent, step: Callable[[CrmEvent], object], event: CrmEvent) -> bool:
    """One step for one event in its own savepoint; a failure marks the row for a later retry
    without touching the rest of the batch. Lock conflicts with another worker are retried at
    once: the other transaction has gone ahead, so the second try normally succeeds."""
    for attempt in range(_TRANSIENT_RETRIES + 1):
        try:
            with transaction.atomic():
                step(event)
            return True
        except OperationalError as exc:
            if _is_transient(exc) and attempt < _TRANSIENT_RETRIES:
                continue
            _mark_failed(row, exc)
            return False
        except Exception as exc:  # one bad event must not block the others
            _mark_failed(row, exc)
            return False
    return False  # pragma: no cover - the loop always returns


def _run_domains_in_bulk(events: list[CrmEvent]) -> bool:
    if not events:
        return True
    try:
        with transaction.atomic():
            handle_domain_events(events)
    except Exception:  # the per-event pass below retries and pins down the failing event
        logger.warning(
            "Domain handlers failed for a batch; retrying event by event.", exc_info=True
        )
        return False
    return True


def _is_transient(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _mark_done(row: InboxEvent, at: datetime | None = None) -> None:
    row.status = InboxStatus.DONE
    row.last_error = ""
    row.processed_at = at or timezone.now()


def _mark_invalid(row: InboxEvent, exc: BaseException) -> None:
    """What ``store_invalid`` records, decided by the worker instead of the ack."""
    logger.error("Unreadable %s payload in inbox event %s: %s", row.kind, row.pk, exc)
    row.status = InboxStatus.INVALID
    row.last_error = str(exc)[:2000]


def _mark_failed(row: InboxEvent, exc: BaseException) -> None:
    logger.error("Processing inbox event %s (%s) failed", row.pk, row.kind, exc_info=exc)
    row.last_error = "".join(traceback.format_exception_only(exc)).strip()[:2000]
    if row.attempts >= crm_settings.INBOX_MAX_ATTEMPTS:
        row.status = InboxStatus.FAILED
    else:
        row.available_at = timezone.now() + timedelta(seconds=min(2**row.attempts * 5, 3600))


def _schedule_retry(when: datetime) -> None:
    """Wake a worker when the earliest backed-off event becomes due, so retries do not wait
    for the periodic sweep (which stays as the safety net if this message is lost)."""
    from saleor_crm_plugin.tasks.ingest import process_inbox_task

    delay = max(0.0, (when - timezone.now()).total_seconds()) + 0.5
    try:
        process_inbox_task.apply_async(countdown=delay)
    except Exception:  # broad by design: the sweep covers a broker outage
        logger.warning("Could not schedule the inbox retry; the sweep will.", exc_info=True)


def _redact_erased(rows: list[InboxEvent]) -> None:
    from saleor_crm_plugin.core.bulk import InArray
    from saleor_crm_plugin.customers.models import Customer

    user_ids = {r.subject_user_id for r in rows if r.subject_user_id}
    hashes = {r.subject_email_hash for r in rows if r.subject_email_hash}
    if not user_ids and not hashes:
        return
    # Every batch asks this of its ~500 subjects and almost never finds anyone: two array
    # parameters instead of the ORM's IN lists, whose compilation and quoting (per value) cost
    # more CPU than the rest of the batch's bookkeeping.
    erased = Customer.objects.filter(erased_at__isnull=False).filter(
        Q(InArray(F("saleor_user_id"), user_ids)) | Q(InArray(F("email_hash"), hashes))
    )
    for user_id, hashed in erased.values_list("saleor_user_id", "email_hash"):
        redact_for_subject(user_id=user_id or "", email_hash=hashed)


def redact_for_subject(*, user_id: str, email_hash: str) -> int:
    """Drop stored payloads about an erased customer (GDPR); dedupe keys stay, so a retried
    delivery is still recognised as a duplicate."""
    condition = Q(pk__in=[])
    if user_id:
        condition |= Q(subject_user_id=user_id)
    if email_hash:
        condition |= Q(subject_email_hash=email_hash)
    return (
        InboxEvent.objects.filter(condition)
        .exclude(status=InboxStatus.PENDING)
        .update(payload=REDACTED_PAYLOAD, raw_body="")
    )


def sweep(*, older_than_seconds: int | None = None) -> int:
    """Re-enqueue stranded pending events (broker was down, worker died). Returns their count."""
    age = (
        crm_settings.INBOX_SWEEP_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    )
    cutoff = timezone.now() - timedelta(seconds=age)
    stranded = InboxEvent.objects.filter(
        status=InboxStatus.PENDING, received_at__lte=cutoff, available_at__lte=timezone.now()
    ).count()
    if stranded:
        enqueue_processing()
    return stranded


def requeue_failed() -> int:
    """Give failed events another round (after a fix was deployed)."""
    return InboxEvent.objects.filter(status=InboxStatus.FAILED).update(
        status=InboxStatus.PENDING, attempts=0, available_at=timezone.now()
    )


def prune(*, retention_days: int | None = None) -> int:
    """Delete processed rows past retention; their dedupe protection ends with them, which is
    fine because Saleor stops retrying after minutes."""
    days = crm_settings.INBOX_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = InboxEvent.objects.filter(
        status__in=[InboxStatus.DONE, InboxStatus.INVALID], received_at__lt=cutoff
    ).delete()
    return deleted
