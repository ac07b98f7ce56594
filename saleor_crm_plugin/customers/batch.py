"""Project a whole inbox batch with a constant number of queries.

The per-event projection (``projection.apply_event``) reads and writes a handful of rows per
event, which caps a worker at a few hundred events per second. This unit of work applies the
*same* rules (it calls the same merge functions) to rows loaded once for the batch, then writes
every change in bulk: one locked read of the batch's orders, their lines and the customers
involved, then bulk inserts and pipelined updates.

It only takes the common path. Whatever is rare and delicate (an erasure in the batch, a
customer already erased, a unique-key race with another worker) makes ``apply_batch`` return
False without writing anything, and the caller runs the per-event projection instead, which
handles every case and isolates failing events. Equivalence of the two paths is tested on the
captured events and on the demo's 2,300 deliveries in many orders.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from operator import attrgetter

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from saleor_crm_plugin.core.bulk import (
    any_of,
    array_param,
    insert_rows,
    row_values,
    update_rows,
)
from saleor_crm_plugin.core.heap import paused_gc
from saleor_crm_plugin.core.privacy import email_hash
from saleor_crm_plugin.core.rows import RowReader, new_instance
from saleor_crm_plugin.customers import projection
from saleor_crm_plugin.customers.models import Customer, CustomerLink, Order, OrderLine
from saleor_crm_plugin.events.types import CrmEvent, EventKind, OrderSnapshot

logger = logging.getLogger(__name__)


class Unsupported(Exception):
    """This batch needs the per-event path."""


# Another worker creating the same customer or order, or locking rows in another order, makes
# the whole batch fail; by the time it is retried that transaction has committed, so a fresh
# load sees its rows and the retry normally goes through.
_BATCH_ATTEMPTS = 3


def apply_batch(events: Sequence[CrmEvent]) -> bool:
    """Project ``events`` in bulk; False (and nothing written) when the per-event path must
    do it instead. The collector waits for the batch (``core.heap.paused_gc``): its rows live until
    it ends, and collecting them on the way cost more than applying them."""
    if not events:
        return True
    with paused_gc():
        return _apply_batch(events)


def _apply_batch(events: Sequence[CrmEvent]) -> bool:
    for attempt in range(1, _BATCH_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                unit = _Unit(events)
                unit.load()
                for event in events:
                    unit.apply(event)
                unit.flush()
        except Unsupported as reason:
            logger.debug("Batch projection not used: %s", reason)
            return False
        except (IntegrityError, OperationalError) as exc:
            if attempt < _BATCH_ATTEMPTS:
                continue
            logger.warning(
                "Batch projection conflicted %d times (%s); event by event.", attempt, exc
            )
            return False
        except Exception:  # the per-event path retries each event and records which one fails
            logger.warning("Batch projection failed; projecting event by event.", exc_info=True)
            return False
        return True
    return False  # pragma: no cover - the loop always returns


def subject_keys(event: CrmEvent) -> set[str]:
    """What a batch locks for ``event``: its order, and the customer it names by user id and
    by e-mail (orders link by either)."""
    keys: set[str] = set()
    if event.order is not None:
        keys.add(f"o:{event.order.saleor_order_id}")
        if event.order.user_id:
            keys.add(f"u:{event.order.user_id}")
        if event.order.user_email:
            keys.add(f"e:{event.order.user_email}")
    elif event.customer is not None:
        keys.add(f"u:{event.customer.saleor_user_id}")
        if event.customer.email:
            keys.add(f"e:{event.customer.email}")
    return keys


def _lock_id(key: str) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"crm-subject").digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_subjects(keys: list[str]) -> None:
    """Serialise workers whose batches share an order or a customer.

    Row locks cannot do it: the rows a batch is about to create do not exist yet, so two workers
    both insert the same new order and one of them fails on the unique index. A transaction
    advisory lock per subject (order id, user id, e-mail), taken in ascending key order so two
    workers can never wait on each other in a cycle, makes the second worker wait until the
    first has committed; its load then sees the rows. Disjoint batches still run in parallel.
    The inbox first takes what it can of these locks without waiting (``try_lock_subjects``)
    and leaves the events whose subjects another worker holds for a later batch, so here the
    locks are normally already held by this transaction (advisory locks are re-entrant).
    """
    if connection.vendor != "postgresql" or not keys:
        return
    ids = sorted({_lock_id(key) for key in keys})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT unnest(%s::bigint[]) AS k ORDER BY 1) AS subjects",
            [array_param(ids)],
        )


def try_lock_subjects(events: Sequence[CrmEvent]) -> list[bool]:
    """For each event, whether this transaction now holds every subject lock it needs, taken
    without waiting (``pg_try_advisory_xact_lock``): False means another worker's open batch
    holds one of them. Outside PostgreSQL there is nothing to contend with.

    When no event is free, every lock taken here is given back (the savepoint is rolled back,
    which releases transaction-level advisory locks taken after it): the caller then waits
    for the locks in ascending order in ``_lock_subjects``, holding none, so two waiting
    workers cannot form a cycle. Otherwise the locks stay until commit, including those of
    events that cannot go, which only makes another worker leave those subjects to us in
    turn; a transaction that keeps its try-locks never waits on an advisory lock, since the
    events it processes are exactly those whose locks it holds."""
    keys = [subject_keys(event) for event in events]
    if connection.vendor != "postgresql":
        return [True] * len(events)
    ids = {key: _lock_id(key) for event_keys in keys for key in event_keys}
    if not ids:
        return [True] * len(events)
    savepoint = transaction.savepoint()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k, pg_try_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k",
            [array_param(sorted(set(ids.values())))],
        )
        held = {k for k, ok in cursor.fetchall() if ok}
    free = [all(ids[key] in held for key in event_keys) for event_keys in keys]
    if any(free):
        transaction.savepoint_commit(savepoint)
    else:
        transaction.savepoint_rollback(savepoint)
    return free


# The batch's existing order lines (~10 per order, thousands per batch) as model instances
# without ``Model.__init__``/``from_db`` per row and without the queryset's SQL compiler: the
# same columns and database converters, so the instances are what the ORM would build.
_LINES = RowReader(OrderLine)
# The batch's orders and customers, locked: the queryset's compiler and ``from_db`` per row
# were most of loading them (~1,500 orders and customers per batch of 500 events).
_ORDERS = RowReader(Order)
_CUSTOMERS = RowReader(Customer)


def _load_lines(order_pks: list[int]) -> list[OrderLine]:
    if not order_pks:
        return []
    where, params = any_of("t.order_id", order_pks, "bigint")
    return _LINES.fetch(where, params, order_by="t.id")


class _Unit:
    def __init__(self, events: Sequence[CrmEvent]) -> None:
        self.events = events
        self.by_user_id: dict[str, Customer] = {}
        self.guests: dict[str, Customer] = {}  # not erased guest rows by e-mail
        self.customers: list[Customer] = []  # every customer in play, loaded or new
        self.dirty_customers: dict[int, Customer] = {}  # id(obj) -> obj
        self.orders: dict[str, Order] = {}
        self.new_orders: dict[int, Order] = {}
        self.dirty_orders: dict[int, Order] = {}
        self.order_customer: dict[int, Customer] = {}  # id(order) -> customer in play
        self.lines: dict[str, dict[str, OrderLine]] = {}
        self.new_lines: list[OrderLine] = []
        self.dirty_lines: dict[int, OrderLine] = {}
        self.stale_lines: list[int] = []
        self.loaded_lines: dict[int, tuple[object, ...]] = {}  # id(line) -> state when loaded
        self.absorbed: list[tuple[Customer, Customer]] = []  # (guest row, new owner)
        self.touched: set[int] = set()  # id(customer) needing fresh aggregates
        self.touched_ids: set[int] = set()  # customer pks needing fresh aggregates

    # -- loading ----------------------------------------------------------------------------

    def load(self) -> None:
        keys: set[str] = set()
        for event in self.events:
            if event.kind == EventKind.CUSTOMER_DELETED:
                raise Unsupported("erasure in batch")
            keys |= subject_keys(event)
        _lock_subjects(list(keys))
        order_ids = {key[2:] for key in keys if key.startswith("o:")}
        user_ids = {key[2:] for key in keys if key.startswith("u:")}
        emails = {key[2:] for key in keys if key.startswith("e:")}
        where, params = any_of("t.saleor_order_id", list(order_ids), "text")
        orders = _ORDERS.fetch(where, params, order_by="t.id", for_update=True)
        self.orders = {order.saleor_order_id: order for order in orders}
        owner_ids = {order.customer_id for order in orders if order.customer_id}
        hashes = {email_hash(address) for address in emails}
        conditions = [
            any_of("t.id", list(owner_ids), "bigint"),
            any_of("t.saleor_user_id", list(user_ids), "text"),
            any_of("t.email", list(emails), "text"),
        ]
        if hashes:
            where, params = any_of("t.email_hash", list(hashes), "text")
            conditions.append((f"({where} AND t.erased_at IS NOT NULL)", params))
        customers = _CUSTOMERS.fetch(
            " OR ".join(f"({where})" for where, _ in conditions),
            [param for _, params in conditions for param in params],
            order_by="t.id",
            for_update=True,
        )
        if any(customer.is_erased for customer in customers):
            raise Unsupported("erased customer involved")
        for customer in customers:
            self._track(customer)
        by_pk = {customer.pk: customer for customer in customers}
        for order in orders:
            if order.customer_id in by_pk:
                self.order_customer[id(order)] = by_pk[order.customer_id]
        by_order_pk = {order.pk: order for order in orders}
        self.lines = {order.saleor_order_id: {} for order in orders}
        loaded = _load_lines(list(by_order_pk))
        # Every loaded line's ``line_state`` in one pass from the rows' ``__dict__``
        # (``core.bulk.row_values``: 17 columns a line, ~10 lines per event).
        states = row_values(loaded, projection.LINE_UPDATE_FIELDS)
        for line, state in zip(loaded, states, strict=True):
            owner = by_order_pk[line.order_id]
            self.lines[owner.saleor_order_id][line.saleor_line_id] = line
            self.loaded_lines[id(line)] = state

    def _track(self, customer: Customer) -> None:
        self.customers.append(customer)
        if customer.saleor_user_id:
            self.by_user_id[customer.saleor_user_id] = customer
        elif customer.email:
            self.guests[customer.email] = customer

    # -- the same rules as projection.py, on rows in memory -----------------------------------

    def apply(self, event: CrmEvent) -> None:
        if event.order is not None:
            self._apply_order(event, event.order)
        elif event.customer is not None:
            snapshot = event.customer
            customer = self._customer_by_user_id(snapshot.saleor_user_id, snapshot.email or "")
            version = f"{projection.PROFILE_FROM_CUSTOMER_EVENT}|{event.version}"
            if projection.merge_profile(customer, snapshot, version):
                self._dirty(customer)
            if self._absorb_guests(customer):
                self.touched.add(id(customer))

    def _dirty(self, customer: Customer) -> None:
        self.dirty_customers[id(customer)] = customer

    def _customer_by_user_id(self, user_id: str, email: str) -> Customer:
        customer = self.by_user_id.get(user_id)
        if customer is not None:
            return customer
        guest = self.guests.pop(email, None) if email else None
        if guest is not None:
            guest.saleor_user_id = user_id
            self.by_user_id[user_id] = guest
            self._dirty(guest)
            return guest
        customer = new_instance(Customer, saleor_user_id=user_id, email=email)
        self._track(customer)
        self._dirty(customer)
        return customer

    def _customer_for_email(self, email: str) -> Customer | None:
        if not email:
            return None
        registered = sorted(
            (c for c in self.by_user_id.values() if c.email == email),
            key=lambda c: c.saleor_user_id or "",
        )
        if registered:
            return registered[0]
        guest = self.guests.get(email)
        if guest is None:
            guest = new_instance(Customer, email=email)
            self._track(guest)
            self._dirty(guest)
        return guest

    def _absorb_guests(self, customer: Customer) -> bool:
        if not customer.email or customer.saleor_user_id is None:
            return False
        guest = self.guests.get(customer.email)
        if guest is None or guest is customer:
            return False
        del self.guests[customer.email]
        for order in self.orders.values():
            if self.order_customer.get(id(order)) is guest:
                self.order_customer[id(order)] = customer
                order.customer = customer  # type: ignore[assignment]
                self.dirty_orders[id(order)] = order
        self.dirty_customers.pop(id(guest), None)
        if guest.pk is not None:
            self.absorbed.append((guest, customer))
        return True

    def _order(self, snapshot: OrderSnapshot) -> Order:
        order = self.orders.get(snapshot.saleor_order_id)
        if order is None:
            order = new_instance(
                Order,
                saleor_order_id=snapshot.saleor_order_id,
                channel_id=snapshot.channel_id,
                currency=snapshot.currency,
                status=snapshot.status,
                created_at=snapshot.created_at,
            )
            self.orders[snapshot.saleor_order_id] = order
            self.new_orders[id(order)] = order
            self.lines[snapshot.saleor_order_id] = {}
        return order

    def _apply_order(self, event: CrmEvent, snapshot: OrderSnapshot) -> None:
        event_version = event.version  # a formatted timestamp: computed once, used three times
        order = self._order(snapshot)
        previous = self.order_customer.get(id(order))
        if previous is None and order.customer_id is not None:
            raise Unsupported("order owner not loaded")  # pragma: no cover - loaded above
        if snapshot.user_id:
            customer: Customer | None = self._customer_by_user_id(
                snapshot.user_id, snapshot.user_email
            )
            assert customer is not None
            version = f"{projection.PROFILE_FROM_ORDER}|{event_version}"
            if projection.merge_embedded_profile(customer, snapshot, version):
                self._dirty(customer)
            self._absorb_guests(customer)
            previous = self.order_customer.get(id(order))  # absorption may have moved it
            link = CustomerLink.USER_ID
        else:
            customer = self._customer_for_email(snapshot.user_email)
            link = CustomerLink.EMAIL if customer is not None else CustomerLink.NONE
        if customer is not None and (
            link > order.customer_link or (link == order.customer_link and previous is not customer)
        ):
            self.order_customer[id(order)] = customer
            order.customer = customer  # type: ignore[assignment]
            order.customer_link = link
        if snapshot.user_id and link == CustomerLink.USER_ID:
            order.saleor_user_id = snapshot.user_id
        projection.merge_order(order, snapshot, event_version)
        if snapshot.lines is not None:
            existing = self.lines.setdefault(snapshot.saleor_order_id, {})
            changes = projection.merge_lines(order, existing, snapshot.lines, event_version)
            self.new_lines.extend(changes.create)
            for row in changes.update:
                if _line_pk(row) is not None:
                    self.dirty_lines[id(row)] = row
            for row in changes.stale:
                if _line_pk(row) is not None:
                    self.stale_lines.append(_line_pk(row))
                    self.dirty_lines.pop(id(row), None)
                elif row in self.new_lines:
                    self.new_lines.remove(row)
        self.dirty_orders[id(order)] = order
        for who in (self.order_customer.get(id(order)), previous):
            if who is not None:
                self.touched.add(id(who))

    # -- writing ----------------------------------------------------------------------------

    def flush(self) -> None:
        now = timezone.now()
        existing = [c for c in self.dirty_customers.values() if c.pk is not None]
        created = [c for c in self.dirty_customers.values() if c.pk is None]
        for customer in existing:
            customer.updated_at = now
        update_rows(Customer, existing, [*_CUSTOMER_FIELDS, "saleor_user_id", "updated_at"])
        insert_rows(Customer, created)
        for guest, owner in self.absorbed:
            Order.objects.filter(customer_id=guest.pk).update(customer_id=owner.pk)
            self.touched_ids.add(guest.pk)
        if self.absorbed:
            Customer.objects.filter(pk__in=[guest.pk for guest, _ in self.absorbed]).delete()

        for order in self.orders.values():
            owner = self.order_customer.get(id(order))
            if owner is not None:
                order.customer_id = owner.pk
            order.projected_at = now
        insert_rows(Order, list(self.new_orders.values()))
        update_rows(
            Order,
            [o for o in self.dirty_orders.values() if id(o) not in self.new_orders],
            _ORDER_FIELDS,
        )
        if self.stale_lines:
            OrderLine.objects.filter(pk__in=self.stale_lines).delete()
        point_lines_at_orders(self.new_lines)
        if self.new_lines:
            # Most of what a batch writes; nothing needs their ids afterwards (later events of
            # the batch already updated these objects in memory).
            insert_rows(OrderLine, self.new_lines, set_ids=False)
        if self.dirty_lines:
            projection.update_lines(list(self.dirty_lines.values()), before=self.loaded_lines)

        in_play = {id(c): c for c in self.customers}
        ids = {in_play[key].pk for key in self.touched if key in in_play} | self.touched_ids
        projection.refresh_customer_stats(ids)


_LINE_ORDER = OrderLine._meta.get_field("order")


def point_lines_at_orders(lines: list[OrderLine]) -> None:
    """``line.order_id = line.order.pk`` for each line whose order is cached (every new line
    of a batch, whose order may have got its pk since), as the two descriptors do it: the
    cached order read, then the cache dropped when the id changes (a new order's lines had
    None). Their Python calls (``get_cached_value``, ``is_cached``, ``delete_cached_value``)
    were ~2,500 instructions per new line; an uncached or None order takes the descriptors."""
    cache_name = _LINE_ORDER.cache_name
    attname = _LINE_ORDER.attname
    order_pk = projection.order_pk
    for line in lines:
        cache = line._state.fields_cache
        order = cache.get(cache_name)
        if order is None:
            line.order_id = order_pk(line.order)  # fetches, or raises as the descriptor does
            continue
        pk = order_pk(order)
        values = line.__dict__
        if values.get(attname) != pk:
            del cache[cache_name]
        values[attname] = pk


# ``row.pk`` as one C call (the ``pk`` property is a Python call of ``_get_pk_val``, which
# reads the primary key's attname from ``_meta`` each time): ~20 per event here. An order's
# is ``projection.order_pk``.
_line_pk = attrgetter(OrderLine._meta.pk.attname)

_CUSTOMER_FIELDS = [*projection._PROFILE_FIELDS, "field_versions"]
_ORDER_FIELDS = [
    f.attname
    for f in Order._meta.concrete_fields
    if not f.primary_key and f.attname not in {"saleor_order_id"}
]
