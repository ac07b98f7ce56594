"""Apply ``CrmEvent`` snapshots to the customer/order projection.

Rules that make processing idempotent and independent of delivery order:

* Each field group of an order (core, payment, lines, fulfilled quantities, refunded
  quantities) is a last-writer-wins register keyed by ``CrmEvent.version`` (Saleor's
  ``updatedAt``, then source richness, then the dedupe key): the newest snapshot that *knows*
  a group wins, whatever arrives first.
* Milestone dates (paid, fulfilled, cancelled) keep the earliest value seen (a min is
  commutative), and immutable line facts (product, category) fill in when unknown.
* A customer's profile is a register too; data embedded in an order ranks below any customer
  event, so a ``customer_updated`` always beats the name copied onto an order.
* The customer an order belongs to only gets stronger: a link by Saleor user id beats a link by
  e-mail (legacy payloads and guests carry no user id).
* Aggregates (order count, spend) are recomputed from the orders, never incremented.
* ``customer_deleted`` is a tombstone: nothing later can write personal data back.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter, itemgetter

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Min, Sum
from django.db.models.query_utils import DeferredAttribute

from saleor_crm_plugin.core.bulk import (
    InArray,
    array_param,
    row_values,
    server_bound_cursor,
    update_rows,
    upsert_rows,
)
from saleor_crm_plugin.core.heap import paused_gc
from saleor_crm_plugin.core.privacy import email_hash
from saleor_crm_plugin.core.rows import adopted_instance, init_receivers, new_instance
from saleor_crm_plugin.customers.models import (
    NON_SALE_STATUSES,
    Customer,
    CustomerChannelStats,
    CustomerLink,
    Order,
    OrderLine,
)
from saleor_crm_plugin.events.types import (
    CrmEvent,
    CustomerSnapshot,
    EventKind,
    OrderLineSnapshot,
    OrderSnapshot,
)

logger = logging.getLogger(__name__)

# Profile versions: customer events (class 1) always beat data copied from an order (class 0).
PROFILE_FROM_CUSTOMER_EVENT = "1"
PROFILE_FROM_ORDER = "0"


def apply_event(event: CrmEvent) -> Order | Customer | None:
    """Project one event. Safe to call any number of times, in any order."""
    if event.order is not None:
        return apply_order_event(event)
    if event.kind == EventKind.CUSTOMER_DELETED and event.customer is not None:
        return erase_customer(
            event.customer.saleor_user_id, email=event.customer.email, at=event.issued_at
        )
    if event.customer is not None:
        return apply_customer_event(event)
    return None


# -- customers -------------------------------------------------------------------------------


def _lock_customer_by_user_id(user_id: str, email: str) -> Customer:
    """Return the registered customer row, locked; create it (or promote the guest row with
    the same e-mail) when unknown. Concurrent creators meet on the unique constraint."""
    for _ in range(3):
        customer = Customer.objects.select_for_update().filter(saleor_user_id=user_id).first()
        if customer is not None:
            return customer
        try:
            with transaction.atomic():
                guest = None
                if email:
                    guest = (
                        Customer.objects.select_for_update()
                        .filter(saleor_user_id__isnull=True, erased_at__isnull=True, email=email)
                        .first()
                    )
                if guest is not None:
                    guest.saleor_user_id = user_id
                    guest.save(update_fields=["saleor_user_id", "updated_at"])
                    return guest
                return Customer.objects.create(saleor_user_id=user_id, email=email)
        except IntegrityError:
            continue
    raise RuntimeError(f"Could not lock customer {user_id}")


def _guest_customer(email: str) -> Customer:
    for _ in range(3):
        guest = (
            Customer.objects.select_for_update()
            .filter(saleor_user_id__isnull=True, erased_at__isnull=True, email=email)
            .first()
        )
        if guest is not None:
            return guest
        try:
            with transaction.atomic():
                return Customer.objects.create(email=email)
        except IntegrityError:
            continue
    raise RuntimeError(f"Could not lock guest customer {email}")


def _customer_for_email(email: str, order_created_at: datetime) -> Customer | None:
    """Who a guest (or legacy, id-less) order belongs to."""
    if not email:
        return None
    hashed = email_hash(email)
    tombstone = (
        Customer.objects.filter(email_hash=hashed, erased_at__gt=order_created_at)
        .order_by("saleor_user_id", "pk")
        .first()
    )
    if tombstone is not None:
        # Placed before that customer asked to be forgotten: it is theirs, and stays anonymous.
        return tombstone
    registered = (
        Customer.objects.filter(email=email, saleor_user_id__isnull=False, erased_at__isnull=True)
        .order_by("saleor_user_id")
        .first()
    )
    if registered is not None:
        return registered
    return _guest_customer(email)


def _set_all_if_newer(obj: Customer | Order, values: dict[str, object], version: str) -> bool:
    """Per-field last-writer-wins: only a snapshot that knows a field (not None) and is newer
    than the one its current value came from may replace it; True when any field took the
    snapshot's value. One loop over the registers (this runs for every order event and the
    profile it embeds, ~25 fields each)."""
    versions = obj.field_versions
    changed = False
    for name, value in values.items():
        if value is None or version <= versions.get(name, ""):
            continue
        setattr(obj, name, value)
        versions[name] = version
        changed = True
    return changed


_PROFILE_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_confirmed",
    "date_joined",
    "language_code",
    "country_code",
    "metadata",
    "saleor_updated_at",
)


def _profile_values(snapshot: CustomerSnapshot) -> dict[str, object]:
    return {
        "email": snapshot.email,
        "first_name": snapshot.first_name,
        "last_name": snapshot.last_name,
        "is_active": snapshot.is_active,
        "is_confirmed": snapshot.is_confirmed,
        "date_joined": snapshot.date_joined,
        "language_code": snapshot.language_code,
        "country_code": snapshot.country_code,
        "metadata": None if snapshot.metadata is None else dict(snapshot.metadata),
        "saleor_updated_at": snapshot.updated_at,
    }


def merge_profile(customer: Customer, snapshot: CustomerSnapshot, version: str) -> bool:
    """Apply a profile snapshot in memory; True when any field took the snapshot's value."""
    if customer.is_erased:
        return False
    return _set_all_if_newer(customer, _profile_values(snapshot), version)


def merge_embedded_profile(customer: Customer, snapshot: OrderSnapshot, version: str) -> bool:
    """``merge_profile(customer, embedded_profile(snapshot), version)`` without building the
    ``CustomerSnapshot`` and its ten-value dict (every order event of a registered customer
    in a batch): of an embedded profile only the e-mail and the names can be known, every
    other value is None, which never replaces anything. The three are offered in the order
    ``_profile_values`` has them, so ``field_versions`` gains its keys in the same order."""
    if customer.is_erased:
        return False
    assert snapshot.user_id
    return _set_all_if_newer(
        customer,
        {
            "email": snapshot.user_email or None,
            "first_name": snapshot.user_first_name,
            "last_name": snapshot.user_last_name,
        },
        version,
    )


def _apply_profile(customer: Customer, snapshot: CustomerSnapshot, version: str) -> bool:
    changed = merge_profile(customer, snapshot, version)
    if changed:
        customer.save()
    return changed


def embedded_profile(snapshot: OrderSnapshot) -> CustomerSnapshot:
    """The customer data copied onto an order: fills in, never beats a customer event."""
    assert snapshot.user_id
    return CustomerSnapshot(
        saleor_user_id=snapshot.user_id,
        email=snapshot.user_email or None,
        first_name=snapshot.user_first_name,
        last_name=snapshot.user_last_name,
    )


def apply_customer_event(event: CrmEvent) -> Customer:
    snapshot = event.customer
    assert snapshot is not None
    with transaction.atomic():
        customer = _lock_customer_by_user_id(snapshot.saleor_user_id, snapshot.email or "")
        if customer.is_erased:
            return customer
        _apply_profile(customer, snapshot, f"{PROFILE_FROM_CUSTOMER_EVENT}|{event.version}")
        if _absorb_guests(customer):
            refresh_customer_stats([customer.pk])
    return customer


def _absorb_guests(customer: Customer) -> bool:
    """Move orders of a guest row with the customer's e-mail onto the registered customer."""
    if not customer.email or customer.saleor_user_id is None:
        return False
    guests = list(
        Customer.objects.select_for_update()
        .filter(saleor_user_id__isnull=True, erased_at__isnull=True, email=customer.email)
        .exclude(pk=customer.pk)
    )
    if not guests:
        return False
    guest_ids = [g.pk for g in guests]
    Order.objects.filter(customer_id__in=guest_ids).update(customer=customer)
    Customer.objects.filter(pk__in=guest_ids).delete()
    return True


def erase_customer(user_id: str, *, email: str = "", at: datetime) -> Customer:
    """GDPR erasure. Keeps an anonymous tombstone (id, keyed e-mail hash, aggregates) so
    ledgers still add up and late or replayed events cannot write the data back."""
    with transaction.atomic():
        customer = _lock_customer_by_user_id(user_id, "")
        if customer.is_erased:
            # The same deletion can arrive several times (both payload styles, retries):
            # keep the earliest time so the result does not depend on which came first.
            if at < customer.erased_at:
                customer.erased_at = at
                customer.save(update_fields=["erased_at", "updated_at"])
            return customer
        address = customer.email or (email or "").strip().lower()
        if address:
            _absorb_guests_by_email(customer, address, at)
        customer.email_hash = email_hash(address)
        customer.email = ""
        customer.first_name = ""
        customer.last_name = ""
        customer.metadata = {}
        customer.language_code = ""
        customer.country_code = ""
        customer.date_joined = None
        customer.is_active = False
        customer.field_versions = {}
        customer.erased_at = at
        customer.save()
        Order.objects.filter(customer=customer).update(user_email="")
        refresh_customer_stats([customer.pk])
        from saleor_crm_plugin.events.inbox import redact_for_subject

        redact_for_subject(user_id=user_id, email_hash=customer.email_hash)
    return customer


def _absorb_guests_by_email(customer: Customer, email: str, before: datetime) -> None:
    """Guest orders placed with the address before the erasure belong to the erased customer;
    later ones are a new relationship and stay with a guest row."""
    guest_ids = list(
        Customer.objects.select_for_update()
        .filter(saleor_user_id__isnull=True, erased_at__isnull=True, email=email)
        .values_list("pk", flat=True)
    )
    if not guest_ids:
        return
    Order.objects.filter(customer_id__in=guest_ids, created_at__lt=before).update(customer=customer)
    Customer.objects.filter(pk__in=guest_ids).exclude(orders__isnull=False).delete()
    refresh_customer_stats(guest_ids)


# -- orders ----------------------------------------------------------------------------------


def _lock_order(saleor_order_id: str, snapshot: OrderSnapshot) -> tuple[Order, bool]:
    for _ in range(3):
        order = Order.objects.select_for_update().filter(saleor_order_id=saleor_order_id).first()
        if order is not None:
            return order, False
        try:
            with transaction.atomic():
                order = Order(
                    saleor_order_id=saleor_order_id,
                    channel_id=snapshot.channel_id,
                    currency=snapshot.currency,
                    status=snapshot.status,
                    created_at=snapshot.created_at,
                )
                order.save()
                return order, True
        except IntegrityError:
            continue
    raise RuntimeError(f"Could not lock order {saleor_order_id}")


def _min(current: datetime | None, new: datetime | None) -> datetime | None:
    if new is None:
        return current
    if current is None:
        return new
    return min(current, new)


def apply_order_event(event: CrmEvent) -> Order:
    snapshot = event.order
    assert snapshot is not None
    version = event.version
    with transaction.atomic():
        order, _created = _lock_order(snapshot.saleor_order_id, snapshot)
        previous_customer_id = order.customer_id

        customer, link = _resolve_order_customer(event, snapshot)
        if customer is not None and (
            link > order.customer_link
            or (link == order.customer_link and order.customer_id != customer.pk)
        ):
            order.customer = customer
            order.customer_link = link
        if snapshot.user_id and link == CustomerLink.USER_ID:
            order.saleor_user_id = snapshot.user_id

        merge_order(order, snapshot, version)

        if order.customer is not None and order.customer.is_erased:
            order.user_email = ""
        order.save()

        if snapshot.lines is not None:
            _apply_lines(order, snapshot.lines, version)

        touched = {order.customer_id, previous_customer_id} - {None}
        refresh_customer_stats(touched)
    return order


def merge_order(order: Order, snapshot: OrderSnapshot, version: str) -> None:
    """Apply an order snapshot's scalar fields and milestones in memory (no customer link,
    no lines)."""
    values: dict[str, object] = {
        "number": snapshot.number,
        "channel_id": snapshot.channel_id,
        "channel_slug": snapshot.channel_slug,
        "currency": snapshot.currency,
        "status": snapshot.status,
        "origin": snapshot.origin,
        "voucher_code": snapshot.voucher_code,
        "user_email": snapshot.user_email,
        "created_at": snapshot.created_at,
        "saleor_updated_at": snapshot.updated_at,
        "total_gross": snapshot.total_gross,
        "total_net": snapshot.total_net,
        "total_tax": snapshot.total_tax,
        "subtotal_gross": snapshot.subtotal_gross,
        "shipping_gross": snapshot.shipping_gross,
    }
    payment = snapshot.payment
    if payment is not None:
        values.update(
            total_charged=payment.total_charged,
            total_refunded=payment.total_refunded,
            charge_status=payment.charge_status,
            authorize_status=payment.authorize_status,
            total_granted_refund=payment.total_granted_refund,
        )
    _set_all_if_newer(order, values, version)
    order.paid_at = _min(order.paid_at, snapshot.paid_at)
    order.fulfilled_at = _min(order.fulfilled_at, snapshot.fulfilled_at)
    order.cancelled_at = _min(order.cancelled_at, snapshot.cancelled_at)


def _resolve_order_customer(
    event: CrmEvent, snapshot: OrderSnapshot
) -> tuple[Customer | None, CustomerLink]:
    if snapshot.user_id:
        customer = _lock_customer_by_user_id(snapshot.user_id, snapshot.user_email)
        if not customer.is_erased:
            # Fill-in only: the profile register keeps customer events on top.
            _apply_profile(
                customer, embedded_profile(snapshot), f"{PROFILE_FROM_ORDER}|{event.version}"
            )
            if _absorb_guests(customer):
                pass  # stats of the absorbing customer are refreshed by the caller
        return customer, CustomerLink.USER_ID
    customer = _customer_for_email(snapshot.user_email, snapshot.created_at)
    return customer, (CustomerLink.EMAIL if customer is not None else CustomerLink.NONE)


@dataclass
class LineChanges:
    create: list[OrderLine] = field(default_factory=list)
    update: list[OrderLine] = field(default_factory=list)
    stale: list[OrderLine] = field(default_factory=list)
    order_fields: list[str] = field(default_factory=list)


def merge_lines(
    order: Order,
    existing: dict[str, OrderLine],
    lines: tuple[OrderLineSnapshot, ...],
    version: str,
) -> LineChanges:
    """Apply a snapshot's lines in memory: the line set, fulfilled and refunded quantities are
    three registers, each taken only from a newer snapshot that knows it."""
    changes = LineChanges()
    # ``all(line.quantity_fulfilled is not None for line in lines)`` without a generator
    # resumed per line (~20 lines per order event, twice): ``in`` tests identity first, and
    # no value a translation puts there (int, or whatever JSON held) equals None otherwise.
    knows_fulfilled = None not in map(_QUANTITY_FULFILLED, lines)
    knows_refunded = None not in map(_QUANTITY_REFUNDED, lines)
    wins_lines = version > order.lines_version
    wins_fulfilled = knows_fulfilled and version > order.fulfilled_version
    wins_refunded = knows_refunded and version > order.refunded_version
    plain = _PLAIN_LINES or _plain_lines()
    receivers = None  # ``init_receivers(OrderLine)``, asked once per call, at the first new line
    for snap in lines:
        row = existing.get(snap.saleor_line_id)
        if row is None:
            if not wins_lines:
                continue
            if receivers is None:
                receivers = init_receivers(OrderLine)
            row = _new_line(order, snap, receivers)
            changes.create.append(row)
            existing[snap.saleor_line_id] = row
            continue
        if plain is _PLAIN and type(row) is OrderLine:
            values = row.__dict__
            try:
                before = _LINE_STATE_ITEMS(values)
                current = _LINE_FACT_ITEMS(values)
            except KeyError:  # a deferred column: the attributes load it
                pass
            else:
                if _merge_plain_line(
                    values, before, current, snap, wins_lines, wins_fulfilled, wins_refunded
                ):
                    changes.update.append(row)
                continue
        before = line_state(row)
        _fill_line_facts(row, snap)
        if wins_lines:
            _set_line_values(row, snap)
        if wins_fulfilled:
            row.quantity_fulfilled = snap.quantity_fulfilled or 0
        if wins_refunded:
            row.quantity_refunded = snap.quantity_refunded or 0
        if line_state(row) != before:
            changes.update.append(row)
    if wins_lines:
        wanted = {snap.saleor_line_id for snap in lines}
        for line_id in sorted(set(existing) - wanted):
            changes.stale.append(existing.pop(line_id))
    if wins_lines:
        order.lines_version = version
        changes.order_fields.append("lines_version")
    if wins_fulfilled:
        order.fulfilled_version = version
        changes.order_fields.append("fulfilled_version")
    if wins_refunded:
        order.refunded_version = version
        changes.order_fields.append("refunded_version")
    return changes


def _merge_plain_line(
    values: dict[str, object],
    before: tuple[object, ...],
    current: tuple[object, ...],
    snap: OrderLineSnapshot,
    wins_lines: bool,
    wins_fulfilled: bool,
    wins_refunded: bool,
) -> bool:
    """A known line's merge (``_fill_line_facts``, ``_set_line_values``, the quantities) on
    the row's ``__dict__``, for a class whose line fields are plain ``DeferredAttribute``s
    (``_plain_lines``): reading one is the dict's value and setting one stores it there, so
    this is what the attribute path does, without a type look-up per read and write (~10
    known lines per order event, each read 17 columns twice and 9 facts). True when the
    line's state changed (``line_state`` differs from ``before``)."""
    # Three tuples of ``_LINE_FACTS``' length by construction; ``strict=`` would only add
    # zip's keyword parsing per line.
    for name, value, was in zip(_LINE_FACTS, _SNAP_FACTS(snap), current):  # noqa: B905
        if value and not was:
            # attributes arrive as a tuple; the JSON column stores (and compares) a list
            values[name] = list(value) if isinstance(value, tuple) else value
    if wins_lines:
        values["product_name"] = snap.product_name
        values["variant_name"] = snap.variant_name
        values["quantity"] = snap.quantity
        values["unit_price_gross"] = snap.unit_price_gross
        values["unit_price_net"] = snap.unit_price_net
        values["total_price_gross"] = snap.total_price_gross
    if wins_fulfilled:
        values["quantity_fulfilled"] = snap.quantity_fulfilled or 0
    if wins_refunded:
        values["quantity_refunded"] = snap.quantity_refunded or 0
    return _LINE_STATE_ITEMS(values) != before


def _apply_lines(order: Order, lines: tuple[OrderLineSnapshot, ...], version: str) -> None:
    existing = {line.saleor_line_id: line for line in order.lines.all()}
    changes = merge_lines(order, existing, lines, version)
    stale_saved = [row.pk for row in changes.stale if row.pk is not None]
    if stale_saved:
        OrderLine.objects.filter(pk__in=stale_saved).delete()
    if changes.create:
        OrderLine.objects.bulk_create(changes.create)
    updates = [row for row in changes.update if row.pk is not None]
    if updates:
        update_lines(updates)
    if changes.order_fields:
        order.save(update_fields=changes.order_fields)


_LINE_UPDATE_FIELDS = (
    "product_name",
    "variant_name",
    "quantity",
    "unit_price_gross",
    "unit_price_net",
    "total_price_gross",
    "quantity_fulfilled",
    "quantity_refunded",
    "variant_id",
    "product_id",
    "product_slug",
    "category_id",
    "category_slug",
    "product_type_id",
    "product_type_slug",
    "attributes",
    "sku",
)


# What the batch reads of a loaded line to tell which columns its merge changed.
LINE_UPDATE_FIELDS = _LINE_UPDATE_FIELDS

# One C call per line instead of a generator over 17 getattr calls: this runs twice for every
# known line of every order event.
line_state: Callable[[OrderLine], tuple[object, ...]] = attrgetter(*_LINE_UPDATE_FIELDS)

# The same two reads from a row's ``__dict__`` (``_merge_plain_line``): a C-level dict look-up
# per column, with the column names the dict's own interned keys.
_LINE_STATE_ITEMS: Callable[[dict[str, object]], tuple[object, ...]] = itemgetter(
    *_LINE_UPDATE_FIELDS
)
_QUANTITY_FULFILLED = attrgetter("quantity_fulfilled")
_QUANTITY_REFUNDED = attrgetter("quantity_refunded")

# Whether ``OrderLine`` keeps ``object``'s attribute access and every column ``merge_lines``
# reads or writes is a plain ``DeferredAttribute`` (a non-data descriptor: an instance's
# ``__dict__`` entry is what reading gives, and setting stores there): decided once, on first
# use (``_plain_lines``), so a model or a subclass that changes that takes the attribute path.
_PLAIN: tuple[str, ...] = ("plain",)
_NOT_PLAIN: tuple[str, ...] = ("not plain",)
_PLAIN_LINES: tuple[str, ...] = ()


def _plain_lines() -> tuple[str, ...]:
    global _PLAIN_LINES
    plain = (
        OrderLine.__getattribute__ is object.__getattribute__
        and OrderLine.__setattr__ is object.__setattr__
        and all(
            type(inspect.getattr_static(OrderLine, name, None)) is DeferredAttribute
            for name in _LINE_UPDATE_FIELDS
        )
    )
    _PLAIN_LINES = _PLAIN if plain else _NOT_PLAIN
    return _PLAIN_LINES


def update_lines(
    rows: list[OrderLine], before: Mapping[int, tuple[object, ...]] | None = None
) -> None:
    """Write changed lines. With ``before`` (``id(row)`` -> ``line_state`` when loaded), only
    the columns that changed are sent, grouped by which changed: a fulfilment or a refund
    changes one quantity per line, and sending the other 16 columns cost more than the
    update itself."""
    if before is None:
        update_rows(OrderLine, rows, _LINE_UPDATE_FIELDS)
        return
    groups: dict[tuple[str, ...], list[OrderLine]] = {}
    # ``line_state`` of every row, read from their ``__dict__`` (``core.bulk.row_values``).
    for row, new in zip(rows, row_values(rows, _LINE_UPDATE_FIELDS), strict=True):
        old = before.get(id(row))
        if old is None:
            names = _LINE_UPDATE_FIELDS
        else:
            pairs = zip(_LINE_UPDATE_FIELDS, old, new, strict=True)
            names = tuple(name for name, was, now in pairs if was != now)
            if not names:
                continue
        groups.setdefault(names, []).append(row)
    for names, group in groups.items():
        update_rows(OrderLine, group, names)


def _set_line_values(row: OrderLine, snap: OrderLineSnapshot) -> None:
    row.product_name = snap.product_name
    row.variant_name = snap.variant_name
    row.quantity = snap.quantity
    row.unit_price_gross = snap.unit_price_gross
    row.unit_price_net = snap.unit_price_net
    row.total_price_gross = snap.total_price_gross


def _new_line(order: Order, snap: OrderLineSnapshot, receivers: bool | None = None) -> OrderLine:
    """A line first seen in ``snap``: what ``OrderLine(order=order, saleor_line_id=...)``
    followed by ``_set_line_values``, the quantities and ``_fill_line_facts`` gives, built
    without ``Model.__init__`` (every new line of every order goes through here, and keyword
    construction cost more than the rest of the batch's merge).

    It is ``new_instance``'s result spelled out for this one model (its defaults copied from
    a dict made once, the snapshot's facts read by one ``attrgetter``): ~8 new lines per
    event made its keyword call, default merge and fact loop a visible share of the apply.
    Receivers of ``pre_init``/``post_init`` still get the real constructor; ``receivers`` is
    ``init_receivers(OrderLine)`` when the caller has just asked it (once per order event, not
    per line), None to ask here."""
    defaults = _LINE_DEFAULTS or _line_defaults()
    if receivers is None:
        receivers = init_receivers(OrderLine)
    if receivers or defaults is _UNSUITED:
        return _new_line_constructed(order, snap)
    # The defaults' copy (``dict.copy`` clones the table in one step) becomes the row's dict.
    values = defaults.copy()
    row = adopted_instance(OrderLine, values)
    # Two tuples of ``_LINE_FACTS``' length by construction (no ``strict=``: its keyword
    # parsing per new line).
    for name, value in zip(_LINE_FACTS, _SNAP_FACTS(snap)):  # noqa: B905
        if value:
            values[name] = value
    attributes = snap.attributes
    values["attributes"] = list(attributes) if attributes else []  # a fresh list, as default
    values["order_id"] = order_pk(order)
    values["saleor_line_id"] = snap.saleor_line_id
    values["product_name"] = snap.product_name
    values["variant_name"] = snap.variant_name
    values["quantity"] = snap.quantity
    values["unit_price_gross"] = snap.unit_price_gross
    values["unit_price_net"] = snap.unit_price_net
    values["total_price_gross"] = snap.total_price_gross
    values["quantity_fulfilled"] = snap.quantity_fulfilled or 0
    values["quantity_refunded"] = snap.quantity_refunded or 0
    # caches the instance, as ``line.order = order`` would; its pk may come later (a new
    # order of a batch), which is why the batch reads ``line.order.pk`` when it writes.
    # ``set_cached_value``'s store, without its Python call (as ``batch.point_lines_at_orders``
    # and the GraphQL loaders read and write the relation cache).
    row._state.fields_cache[_ORDER_CACHE] = order
    return row


def _new_line_constructed(order: Order, snap: OrderLineSnapshot) -> OrderLine:
    """``_new_line`` through ``new_instance`` (which takes the real constructor when someone
    listens to ``pre_init``/``post_init``)."""
    values: dict[str, object] = {
        "order_id": order.pk,
        "saleor_line_id": snap.saleor_line_id,
        "product_name": snap.product_name,
        "variant_name": snap.variant_name,
        "quantity": snap.quantity,
        "unit_price_gross": snap.unit_price_gross,
        "unit_price_net": snap.unit_price_net,
        "total_price_gross": snap.total_price_gross,
        "quantity_fulfilled": snap.quantity_fulfilled or 0,
        "quantity_refunded": snap.quantity_refunded or 0,
    }
    for name in _LINE_FACTS:
        value = getattr(snap, name)
        if value:
            values[name] = list(value) if isinstance(value, tuple) else value
    row = new_instance(OrderLine, **values)
    _LINE_ORDER.set_cached_value(row, order)
    return row


_LINE_DEFAULTS: dict[str, object] = {}
_UNSUITED: dict[str, object] = {}


def _line_defaults() -> dict[str, object]:
    """Every concrete attribute of a new ``OrderLine`` with its field's default, made once;
    ``_UNSUITED`` if a field other than ``attributes`` (whose list ``_new_line`` makes per
    line) has a callable default, which ``_new_line`` would then have to call."""
    fresh = set()
    for line_field in OrderLine._meta.concrete_fields:
        if line_field.has_default() and callable(line_field.default):
            fresh.add(line_field.attname)
        else:
            _LINE_DEFAULTS[line_field.attname] = line_field.get_default()
    if fresh != {"attributes"}:
        _LINE_DEFAULTS.clear()
        return _UNSUITED
    return _LINE_DEFAULTS


_LINE_FACTS = (
    "variant_id",
    "product_id",
    "product_slug",
    "category_id",
    "category_slug",
    "product_type_id",
    "product_type_slug",
    "attributes",
    "sku",
)
_LINE_ORDER = OrderLine._meta.get_field("order")
_ORDER_CACHE = _LINE_ORDER.cache_name  # ``line.order``'s key in the row's relation cache
order_pk = attrgetter(Order._meta.pk.attname)  # ``order.pk`` without the property's call
# A snapshot's or a line's facts, in ``_LINE_FACTS``'s order (a snapshot's attributes are a
# tuple, a line's a list).
_SNAP_FACTS = attrgetter(*_LINE_FACTS)
_LINE_FACT_ITEMS = itemgetter(*_LINE_FACTS)  # a row's facts from its ``__dict__``


def _fill_line_facts(row: OrderLine, snap: OrderLineSnapshot) -> bool:
    """Facts that never change for a line (product, category, type, SKU) fill in when unknown."""
    changed = False
    # Both sides' facts read by one ``attrgetter`` call each (this runs for every known line
    # of every order event): 18 ``getattr`` calls before.
    for name, value, current in zip(_LINE_FACTS, _SNAP_FACTS(snap), _SNAP_FACTS(row), strict=True):
        if value and not current:
            # attributes arrive as a tuple; the JSON column stores (and compares) a list
            setattr(row, name, list(value) if isinstance(value, tuple) else value)
            changed = True
    return changed


# -- aggregates ------------------------------------------------------------------------------


# Customers whose aggregates must be recomputed when the current batch ends (None: no batch).
_deferred_stats: ContextVar[set[int] | None] = ContextVar("crm_deferred_stats", default=None)


@contextmanager
def deferred_stats() -> Iterator[None]:
    """Recompute aggregates once per batch instead of once per event.

    An order typically arrives as three or four events (paid, fulfilled, refunded, ...), and a
    busy customer has many orders in one batch: recomputing after every event would repeat the
    same aggregate queries. Inside this block ``refresh_customer_stats`` only records who is
    affected; the set-wise recompute runs when the block ends, in the caller's transaction.
    A rolled-back event may leave an id recorded: recomputing an unchanged customer is harmless.
    """
    if _deferred_stats.get() is not None:
        yield
        return
    pending: set[int] = set()
    token = _deferred_stats.set(pending)
    try:
        yield
    finally:
        _deferred_stats.reset(token)
    _refresh_now(pending)


def refresh_customer_stats(customer_ids: Iterable[int | None]) -> None:
    """Recompute order count, spend and first/last order from the orders themselves."""
    ids = {pk for pk in customer_ids if pk is not None}
    pending = _deferred_stats.get()
    if pending is not None:
        pending.update(ids)
        return
    _refresh_now(ids)


_STATS_FIELDS = (
    "channel_slug",
    "order_count",
    "total_spent",
    "total_refunded",
    "first_order_at",
    "last_order_at",
)
_STATS_CHUNK = 500


def _refresh_now(customer_ids: set[int]) -> None:
    ordered = sorted(customer_ids)
    with paused_gc():  # a batch's aggregates: thousands of short-lived rows (core.heap.paused_gc)
        for start in range(0, len(ordered), _STATS_CHUNK):
            _refresh_chunk(ordered[start : start + _STATS_CHUNK])


def _refresh_chunk(ids: list[int]) -> None:
    """A constant number of queries for any number of customers: one aggregate, one read of
    the current rows, then only the rows whose figures changed are written.

    On PostgreSQL all of it is one statement (``_refresh_statement``): the aggregate rows, the
    current rows and the changed ones never come to Python. Building and reading them (three
    ORM querysets, a converter call per aggregate value, an instance per changed row, the
    upsert's and the update's arrays) was ~109 k instructions per drained event."""
    if _SET_WISE_REFRESH and connection.vendor == "postgresql":
        with server_bound_cursor() as cursor:
            cursor.execute(
                _refresh_statement(),
                {"ids": array_param(ids), "non_sale": array_param(list(NON_SALE_STATUSES))},
            )
        return
    aggregates = (
        Order.objects.filter(InArray(F("customer_id"), ids))
        .exclude(status__in=NON_SALE_STATUSES)
        .values("customer_id", "channel_id", "currency")
        .annotate(
            n=Count("pk"),
            spent=Sum("total_charged"),
            refunded=Sum("total_refunded"),
            first=Min("created_at"),
            last=Max("created_at"),
            slug=Max("channel_slug"),
        )
        .order_by("customer_id", "channel_id", "currency")
    )
    wanted: dict[tuple[int, str, str], dict[str, object]] = {}
    for row in aggregates:
        wanted[(row["customer_id"], row["channel_id"], row["currency"])] = {
            "channel_slug": row["slug"] or "",
            "order_count": row["n"],
            "total_spent": row["spent"] or Decimal(0),
            "total_refunded": row["refunded"] or Decimal(0),
            "first_order_at": row["first"],
            "last_order_at": row["last"],
        }
    existing = {
        (row[0], row[1], row[2]): row[3:]
        for row in CustomerChannelStats.objects.filter(InArray(F("customer_id"), ids)).values_list(
            "customer_id", "channel_id", "currency", "pk", *_STATS_FIELDS
        )
    }
    upserts = [
        new_instance(
            CustomerChannelStats, customer_id=key[0], channel_id=key[1], currency=key[2], **values
        )
        for key, values in wanted.items()
        if key not in existing or existing[key][1:] != tuple(values[name] for name in _STATS_FIELDS)
    ]
    # An upsert, so two workers refreshing the same new customer cannot collide.
    _upsert_stats(upserts)
    stale = [row[0] for key, row in existing.items() if key not in wanted]
    if stale:
        CustomerChannelStats.objects.filter(pk__in=stale).delete()

    totals: dict[int, tuple[int, datetime | None, datetime | None]] = {}
    for (customer_id, _, _), values in wanted.items():
        count, first, last = totals.get(customer_id, (0, None, None))
        totals[customer_id] = (
            count + int(values["order_count"]),  # type: ignore[call-overload]
            _min(first, values["first_order_at"]),  # type: ignore[arg-type]
            _max(last, values["last_order_at"]),  # type: ignore[arg-type]
        )
    current = Customer.objects.filter(InArray(F("pk"), ids)).values_list(
        "pk", "order_count", "first_order_at", "last_order_at"
    )
    changed = [
        (*totals.get(pk, (0, None, None)), pk)
        for pk, count, first, last in current
        if (count, first, last) != totals.get(pk, (0, None, None))
    ]
    if changed:
        update_rows(
            Customer,
            [
                new_instance(
                    Customer, id=pk, order_count=count, first_order_at=first, last_order_at=last
                )
                for count, first, last, pk in changed
            ],
            ["order_count", "first_order_at", "last_order_at"],
        )


# False: the statements and rows in Python, as on other backends (the tests compare the two).
_SET_WISE_REFRESH = True


@functools.cache
def _refresh_statement() -> str:
    """``_refresh_chunk``'s work as one PostgreSQL statement, made once (tables quoted by the
    backend; the columns are the fields' own names): what the three reads and two writes
    did, row for row.

    ``wanted`` is the aggregate, with ``or ""``/``or Decimal(0)`` as ``COALESCE``. The upsert
    proposes the rows with no current row or whose figures differ (``IS DISTINCT FROM``
    compares as Python's ``!=`` of the values does, NULLs equal), in the aggregate's order
    (the order ``upsert_rows`` took ids from the sequence); the delete removes the current
    rows of a key the aggregate lacks; the customers' update writes those whose count,
    first or last order (0/NULL without orders) differ. The writes touch disjoint rows, so
    running them on one snapshot changes nothing."""
    quote = connection.ops.quote_name
    order, stats, customer = (
        quote(model._meta.db_table) for model in (Order, CustomerChannelStats, Customer)
    )
    key = ("customer_id", "channel_id", "currency")
    columns = ", ".join((*key, *_STATS_FIELDS))
    joined = " AND ".join(f"s.{name} = w.{name}" for name in key)
    return (
        f"WITH wanted AS (SELECT customer_id, channel_id, currency, "
        f"COALESCE(MAX(channel_slug), '') AS channel_slug, COUNT(id) AS order_count, "
        f"COALESCE(SUM(total_charged), 0) AS total_spent, "
        f"COALESCE(SUM(total_refunded), 0) AS total_refunded, "
        f"MIN(created_at) AS first_order_at, MAX(created_at) AS last_order_at "
        f"FROM {order} WHERE customer_id = ANY(%(ids)s::bigint[]) "
        f"AND NOT (status = ANY(%(non_sale)s::text[])) "
        f"GROUP BY customer_id, channel_id, currency), "
        f"upserted AS (INSERT INTO {stats} ({columns}) "
        f"SELECT {', '.join(f'w.{name}' for name in (*key, *_STATS_FIELDS))} FROM wanted w "
        f"LEFT JOIN {stats} s ON {joined} "
        f"WHERE s.id IS NULL OR ({', '.join(f's.{name}' for name in _STATS_FIELDS)}) "
        f"IS DISTINCT FROM ({', '.join(f'w.{name}' for name in _STATS_FIELDS)}) "
        f"ORDER BY w.customer_id, w.channel_id, w.currency "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{name} = EXCLUDED.{name}" for name in _STATS_FIELDS)
        + " RETURNING 1), "
        f"removed AS (DELETE FROM {stats} s WHERE s.customer_id = ANY(%(ids)s::bigint[]) "
        f"AND NOT EXISTS (SELECT 1 FROM wanted w WHERE {joined}) RETURNING 1), "
        f"totals AS (SELECT customer_id, SUM(order_count)::bigint AS order_count, "
        f"MIN(first_order_at) AS first_order_at, MAX(last_order_at) AS last_order_at "
        f"FROM wanted GROUP BY customer_id) "
        f"UPDATE {customer} c SET order_count = COALESCE(t.order_count, 0), "
        f"first_order_at = t.first_order_at, last_order_at = t.last_order_at "
        f"FROM unnest(%(ids)s::bigint[]) AS i(id) LEFT JOIN totals t ON t.customer_id = i.id "
        f"WHERE c.id = i.id AND (c.order_count, c.first_order_at, c.last_order_at) "
        f"IS DISTINCT FROM (COALESCE(t.order_count, 0), t.first_order_at, t.last_order_at)"
    )


def _upsert_stats(rows: list[CustomerChannelStats]) -> None:
    """``bulk_create(update_conflicts=True)`` on the (customer, channel, currency) key, as one
    ``INSERT ... SELECT unnest(...) ON CONFLICT DO UPDATE`` (``core.bulk.upsert_rows``; Django
    quoted every parameter of the INSERT in Python, and a statement per row cost psycopg a
    bind and a result each)."""
    meta = CustomerChannelStats._meta
    key = [meta.get_field(name) for name in ("customer", "channel_id", "currency")]
    values = [meta.get_field(name) for name in _STATS_FIELDS]
    upsert_rows(CustomerChannelStats, rows, key, values)


def _max(current: datetime | None, new: datetime | None) -> datetime | None:
    if new is None:
        return current
    if current is None:
        return new
    return max(current, new)
