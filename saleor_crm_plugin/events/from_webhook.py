"""Translate Saleor webhook bodies (subscription and legacy styles) into ``CrmEvent``.

Subscription payloads are what our manifest asks for (camelCase, floats, upper-case enums,
``updatedAt``). Legacy payloads are what a query-less webhook sends (a one-element JSON array,
snake_case, amounts as strings, no user id, no payment totals). Both are real Saleor 3.23 output,
see ``tests/contract/payloads/``. Fields a payload does not carry stay ``None``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from math import copysign
from typing import Any

import orjson

from saleor_crm_plugin.core.money import ZERO, amount, to_decimal
from saleor_crm_plugin.core.timeutils import parse_datetime
from saleor_crm_plugin.events.exceptions import PayloadError, UnsupportedEvent
from saleor_crm_plugin.events.types import (
    ORDER_EVENTS,
    CrmEvent,
    CustomerSnapshot,
    EventKind,
    EventSource,
    OrderLineSnapshot,
    OrderSnapshot,
    PaymentSnapshot,
    new_customer,
    new_event,
    new_line,
    new_order,
    new_payment,
    stable_hash,
)

# Fulfillment statuses whose lines were paid back to the shopper.
REFUNDED_FULFILLMENT_STATUSES = frozenset({"REFUNDED", "REFUNDED_AND_RETURNED"})
SHIPPED_FULFILLMENT_STATUSES = frozenset(
    {"FULFILLED", "RETURNED", "REFUNDED", "REFUNDED_AND_RETURNED", "REPLACED"}
)
PAID_EVENT_KINDS = frozenset({EventKind.ORDER_PAID, EventKind.ORDER_FULLY_PAID})

# Shared stand-in for an absent node, read with ``.get`` only (never mutated, never returned):
# ``x or {}`` built a new dict for each missing node of each line.
_NO_NODE: Mapping[str, Any] = {}


def event_kind_from_header(value: str | None) -> EventKind:
    if not value:
        raise UnsupportedEvent("Missing Saleor-Event header.")
    try:
        return EventKind(value.strip().lower())
    except ValueError as exc:
        raise UnsupportedEvent(f"Event {value!r} is not consumed by the CRM.") from exc


def translate_webhook(event_name: str | None, raw_body: bytes, saleor_api_url: str) -> CrmEvent:
    """Parse one delivery. The dedupe key is the hash of the exact body: Saleor re-sends the
    stored payload byte for byte on every retry, and ``issuedAt`` makes distinct events differ."""
    kind = event_kind_from_header(event_name)
    event = _translate(kind, raw_body, saleor_api_url)
    return _keyed(event, webhook_dedupe_key(saleor_api_url, kind, raw_body))


def webhook_dedupe_key(saleor_api_url: str, kind: EventKind, raw_body: bytes) -> str:
    """The key the acknowledgement stores a delivery under (nothing in it needs the body
    parsed), and the one its translation carries as the last tie-breaker of versions."""
    return stable_hash("webhook", saleor_api_url, kind.value, raw_body)


def translate_stored_webhook(
    kind_value: str, raw_body: str, saleor_api_url: str, dedupe_key: str
) -> CrmEvent:
    """Translate a delivery the acknowledgement stored untranslated (the worker's side).

    The body comes back as the text the inbox holds and the key as stored: hashing the body
    again would only reproduce it, and the key must be the ack's for the version order to be
    what it was when the ack translated."""
    kind = _KINDS.get(kind_value) if type(kind_value) is str else None
    if kind is None:  # anything else is refused (or taken) by the enum itself, as before
        try:
            kind = EventKind(kind_value)
        except ValueError as exc:
            raise UnsupportedEvent(f"Event {kind_value!r} is not consumed by the CRM.") from exc
    # ``json.loads`` skips a UTF-8 byte-order mark in bytes but refuses it in text.
    text = raw_body[1:] if raw_body.startswith("\ufeff") else raw_body
    # The parsed body (~1,000 dicts and lists) is dropped by reference counting when the
    # translation returns: the collector waits for that instead of walking it (and the batch
    # translated so far) every 700 of them (``core.heap.paused_gc``, inline: once per event).
    if not gc.isenabled():
        return _keyed(_translate(kind, text, saleor_api_url), dedupe_key)
    gc.disable()
    try:
        return _keyed(_translate(kind, text, saleor_api_url), dedupe_key)
    finally:
        gc.enable()


# ``EventKind(value)`` for each member's value: the enum's call runs Python (``EnumType.__call__``
# and ``Enum.__new__``) for every stored delivery; a plain str is looked up here first.
_KINDS: dict[str, EventKind] = {kind.value: kind for kind in EventKind}

# ``CrmEvent.dedupe_key``'s slot, written once by ``_keyed``.
_SET_DEDUPE_KEY = CrmEvent.__dict__["dedupe_key"].__set__


def _keyed(event: CrmEvent, key: str) -> CrmEvent:
    """``event.with_dedupe_key(key)`` for an event ``_translate`` has just made: nothing else
    holds it yet, so its key slot is filled in place (as its builder filled the others)
    instead of copying the event, a second event per webhook."""
    _SET_DEDUPE_KEY(event, key)
    return event


# Every digit made "0": a run of 19 zeros in a body mapped through this table is a run of 19
# digits, the shortest integer literal that can fall outside the 64-bit range.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def _loads(raw_body: bytes | str) -> Any:
    """``json.loads``'s result, mostly computed by orjson (half the CPU on a 13 kB body).

    orjson gives the same values for everything it accepts, floats included (both round the
    literal correctly), except integer literals beyond 64 bits, which it turns into floats:
    bodies with a run of 19 digits (a cheap byte scan) and bodies orjson refuses (NaN, UTF-16,
    a byte-order mark, lone surrogates, ...) go to ``json.loads``, so what is accepted, what
    is refused and the error message stay exactly the standard library's."""
    try:
        data = raw_body.encode() if isinstance(raw_body, str) else raw_body
    except UnicodeEncodeError:
        return json.loads(raw_body)
    if _NINETEEN_DIGITS not in data.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw_body)


def _translate(kind: EventKind, raw_body: bytes | str, saleor_api_url: str) -> CrmEvent:
    if kind in ORDER_EVENTS:  # ``is_order`` reads ``value`` through the enum property
        event = _order_from_selected(kind, raw_body, saleor_api_url)
        if event is not None:
            return event
        event = _order_from_unscanned(kind, raw_body, saleor_api_url)
        if event is not None:
            return event
    try:
        body = _loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"Body is not JSON: {exc}") from exc
    try:
        if isinstance(body, list):
            return _from_legacy(kind, body, saleor_api_url)
        if isinstance(body, dict):
            return _from_subscription(kind, body, saleor_api_url)
        raise PayloadError("Body must be a JSON object or array.")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"Unexpected {kind.value} payload shape: {exc!r}") from exc


# An order body read by orjson without ``_loads``' 19-digit scan (a table lookup per byte,
# ~150,000 instructions of a 16 kB body, more than a tenth of its translation). The scan
# exists because orjson reads an integer literal beyond 64 bits as a float, where
# ``json.loads`` gives the exact int; orjson's tree differs from ``json.loads``' in nothing
# else. So the translation runs on orjson's tree and its event is kept unless such a float
# may have reached it: a float in any field of the snapshots (where raw values pass through),
# or a float of 2**63 or more, in magnitude, where the translation converts one (order
# number, amounts, quantities, attribute slugs: ``_exact``). Anything else (a body orjson
# refuses, a list, any error, a float found) translates again the usual way, so events and
# errors stay those of ``json.loads``' tree.
class _Inexact(Exception):
    """orjson may have read an integer literal the translation uses as a float."""


_ON_UNSCANNED_TREE: ContextVar[bool] = ContextVar("crm_on_unscanned_tree", default=False)
# Integer literals orjson keeps as ints: -2**63 to 2**64 - 1. Past them it gives a float of
# at least 2**64 or at most -2**63 (rounding), so a smaller magnitude is exact either way.
_EXACT_LIMIT = 2.0**63


def _exact(value: float) -> None:
    """Stop a translation on orjson's unscanned tree that converts a float ``json.loads``
    might have read as an int (``_Inexact``); no-op anywhere else."""
    if -_EXACT_LIMIT < value < _EXACT_LIMIT or not _ON_UNSCANNED_TREE.get():
        return
    raise _Inexact


# The order's fields taken from the body as they are; every other field is made by a
# conversion ``_exact`` guards (amounts, number), one that refuses or drops a float (dates,
# e-mail, upper-cased statuses) or is the lines and payment (checked as they are read).
# ``tests/events/test_unscanned_orders.py`` holds the two lists to ``OrderSnapshot``'s fields.
RAW_ORDER_FIELDS = (
    "saleor_order_id",
    "channel_id",
    "channel_slug",
    "currency",
    "user_id",
    "user_first_name",
    "user_last_name",
    "voucher_code",
)


def _holds_float(order: OrderSnapshot) -> bool:
    """Any of ``RAW_ORDER_FIELDS`` a float (one slot read each: a C-level pass over every
    field cost five times as much)."""
    return (
        type(order.saleor_order_id) is float
        or type(order.channel_id) is float
        or type(order.channel_slug) is float
        or type(order.currency) is float
        or type(order.user_id) is float
        or type(order.user_first_name) is float
        or type(order.user_last_name) is float
        or type(order.voucher_code) is float
    )


def _order_from_unscanned(
    kind: EventKind, raw_body: bytes | str, saleor_api_url: str
) -> CrmEvent | None:
    """The order event of a subscription body translated from orjson's tree without the scan,
    or None where ``json.loads``' tree might give another event or error (see above)."""
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict:
        return None
    token = _ON_UNSCANNED_TREE.set(True)
    try:
        event = _from_subscription(kind, body, saleor_api_url)
    except Exception:
        return None
    finally:
        _ON_UNSCANNED_TREE.reset(token)
    order = event.order
    if order is None or _holds_float(order):
        return None
    return event


# An order body decoded by msgspec into only the keys the translation reads
# (``events.order_schema``): what it skips is never built nor freed, and the keys it keeps are
# the code's own interned strings. None without msgspec (an optional speed-up: the package
# works without it, on the paths below).
try:
    import msgspec
except ImportError:  # pragma: no cover - msgspec is a dependency; the fallback stays correct
    msgspec = None  # type: ignore[assignment]

_SELECTIVE_DECODE: Callable[[bytes | str], Any] | None = None
_VARIANT_DECODE: Callable[[bytes], Any] | None = None
_LineStruct: type | None = None  # the decoder's lines (``variant`` as raw text)
_TypedLineStruct: type | None = None  # ``order_schema.Line`` (``variant`` decoded), read alike
_QuantityStruct: type | None = None
_RawText: type | None = None
_MISSING: Any = object()
if msgspec is not None:
    from saleor_crm_plugin.events import order_schema

    _SELECTIVE_DECODE = msgspec.json.Decoder(order_schema.SelectedOrderBody).decode
    _VARIANT_DECODE = msgspec.json.Decoder(order_schema.VariantNode).decode
    _LineStruct = order_schema.SelectedLine
    _TypedLineStruct = order_schema.Line
    _QuantityStruct = order_schema.QuantityLine
    _RawText = msgspec.Raw
    _MISSING = order_schema.MISSING


def _order_from_selected(
    kind: EventKind, raw_body: bytes | str, saleor_api_url: str
) -> CrmEvent | None:
    """The order event of a subscription body translated from msgspec's selective tree, or
    None where that tree may not give ``json.loads``' event or error.

    msgspec accepts a subset of what ``json.loads`` accepts (it refuses NaN and infinities,
    a byte-order mark, escaped lone surrogates; every syntax error either refuses), checks
    the text of the values it skips as well, and reads what it keeps to the same values
    (integers beyond 64 bits exactly, floats correctly rounded, the last of duplicate keys);
    a text body is valid Unicode already. So on any body it decodes, the translation sees the
    values ``json.loads`` would give it under every key it reads; anything it refuses, and
    any error of the translation, goes to the usual paths, which give ``json.loads``' event
    or error. Bytes are not taken: msgspec does not check the UTF-8 of skipped strings, which
    ``json.loads`` refuses (the worker's bodies are the inbox's text)."""
    if _SELECTIVE_DECODE is None or type(raw_body) is not str:
        return None
    try:
        body = _SELECTIVE_DECODE(raw_body)
        return _from_subscription(kind, body, saleor_api_url)
    except Exception:
        return None


# -- subscription style ----------------------------------------------------------------------


def _from_subscription(kind: EventKind, body: dict[str, Any], api_url: str) -> CrmEvent:
    if "data" in body and isinstance(body["data"], dict) and "issuedAt" not in body:
        # Top-level subscription form: {"data": {"orderCreated": {...}}}.
        values = [v for v in body["data"].values() if isinstance(v, dict)]
        if len(values) != 1:
            raise PayloadError("Expected exactly one subscription field under data.")
        body = values[0]
    issued_at = parse_datetime(body.get("issuedAt"))
    if issued_at is None:
        raise PayloadError("Subscription payload has no issuedAt.")
    if kind in ORDER_EVENTS:
        raw_order = body.get("order")
        if not isinstance(raw_order, dict):
            raise PayloadError(f"{kind.value} payload has no order.")
        order = parse_subscription_order(raw_order, kind=kind, issued_at=issued_at)
        return new_event(
            kind=kind,
            source=EventSource.SUBSCRIPTION,
            object_id=order.saleor_order_id,
            issued_at=issued_at,
            saleor_api_url=api_url,
            order=order,
        )
    raw_user = body.get("user")
    if not isinstance(raw_user, dict):
        raise PayloadError(f"{kind.value} payload has no user.")
    customer = parse_subscription_customer(raw_user)
    return new_event(
        kind=kind,
        source=EventSource.SUBSCRIPTION,
        object_id=customer.saleor_user_id,
        issued_at=issued_at,
        saleor_api_url=api_url,
        customer=customer,
    )


# Subscription amounts are JSON floats, and the same prices recur on every line, event and
# order of a product; a Decimal is immutable, so each float is converted once per process
# (the worker translates every webhook now, and this was a fifth of a translation).
_FLOAT_AMOUNTS: dict[float, Decimal] = {}
_FLOAT_AMOUNTS_MAX = 50_000


# Zero amounts (refunds, taxes, shipping, balances: several per order) are kept out of the
# cache, where 0.0 and -0.0 would share an entry; their two conversions are made once here.
_POSITIVE_ZERO = to_decimal(0.0)
_NEGATIVE_ZERO = to_decimal(-0.0)


def _money(node: Mapping[str, Any] | None) -> Decimal | None:
    if not node:
        return None
    value = node.get("amount")
    if type(value) is not float:
        return to_decimal(value)
    if not value:  # keep -0.0 and 0.0 apart, as ``to_decimal`` does
        return _NEGATIVE_ZERO if copysign(1.0, value) < 0 else _POSITIVE_ZERO
    known = _FLOAT_AMOUNTS.get(value)
    if known is None:
        known = to_decimal(value)
        assert known is not None
        if not -_EXACT_LIMIT < value < _EXACT_LIMIT:
            _exact(value)
            return known  # not cached: ``_exact`` must see it every time
        if len(_FLOAT_AMOUNTS) >= _FLOAT_AMOUNTS_MAX:
            _FLOAT_AMOUNTS.clear()
        _FLOAT_AMOUNTS[value] = known
    return known


def _charged(node: Mapping[str, Any] | None) -> Decimal:
    """``amount((node or {}).get("amount"))`` (a payment total, zero when absent) with a float
    answered by ``_money``'s cache: two uncached conversions per order otherwise."""
    value = (node or _NO_NODE).get("amount")
    if type(value) is float:
        known = _money(node)
        assert known is not None
        return known
    return amount(value)


def _taxed(node: Mapping[str, Any] | None, part: str) -> Decimal | None:
    if not node:
        return None
    return _money(node.get(part))


def _upper(value: str | None) -> str | None:
    return value.upper() if isinstance(value, str) else None


def _email(value: str | None) -> str:
    return (value or "").strip().lower()


def _min_date(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def parse_subscription_order(
    data: Mapping[str, Any], *, kind: EventKind, issued_at: datetime
) -> OrderSnapshot:
    """Also used by backfill, which reads the same ``CrmOrder`` fragment from Saleor's API."""
    channel = data["channel"]
    user = data.get("user") or None
    status = _upper(data.get("status")) or "UNCONFIRMED"
    refunded_by_line = _refunded_quantities(data)
    lines = None
    if data.get("lines") is not None:
        # A list comprehension (inlined, PEP 709), not a generator resumed per line.
        lines = tuple(
            [
                _struct_line(line, refunded_by_line)
                if type(line) is _LineStruct or type(line) is _TypedLineStruct
                else _subscription_line(line, refunded_by_line)
                for line in data["lines"]
            ]
        )
    payment = None
    if "totalCharged" in data:
        payment = new_payment(
            total_charged=_charged(data.get("totalCharged")),
            total_refunded=_charged(data.get("totalRefunded")),
            total_granted_refund=_money(data.get("totalGrantedRefund")),
            charge_status=_upper(data.get("chargeStatus")),
            authorize_status=_upper(data.get("authorizeStatus")),
        )
    charge_times = [
        parse_datetime(event.get("createdAt"))
        for transaction in data.get("transactions") or []
        for event in transaction.get("events") or []
        if event.get("type") == "CHARGE_SUCCESS"
    ]
    paid_at = _min_date(charge_times)
    if paid_at is None and payment is not None and payment.charge_status in {"FULL", "OVERCHARGED"}:
        paid_at = issued_at if kind in PAID_EVENT_KINDS else None
    fulfillments = data.get("fulfillments")
    fulfilled_at = None
    if fulfillments:
        fulfilled_at = _min_date(
            parse_datetime(f.get("created"))
            for f in fulfillments
            if _upper(f.get("status")) in SHIPPED_FULFILLMENT_STATUSES
        )
    if fulfilled_at is None and kind == EventKind.ORDER_FULFILLED:
        fulfilled_at = issued_at
    return new_order(
        saleor_order_id=data["id"],
        number=_number(data.get("number")),
        channel_id=channel["id"],
        channel_slug=channel.get("slug"),
        currency=channel.get("currencyCode")
        or (data.get("total") or {}).get("gross", {}).get("currency")
        or "",
        status=status,
        origin=_upper(data.get("origin")),
        created_at=parse_datetime(data["created"]),  # type: ignore[arg-type]
        updated_at=parse_datetime(data.get("updatedAt")),
        user_id=user.get("id") if user else None,
        user_email=_email(data.get("userEmail") or (user or {}).get("email")),
        user_first_name=user.get("firstName") if user else None,
        user_last_name=user.get("lastName") if user else None,
        total_gross=_taxed(data.get("total"), "gross"),
        total_net=_taxed(data.get("total"), "net"),
        total_tax=_taxed(data.get("total"), "tax"),
        subtotal_gross=_taxed(data.get("subtotal"), "gross"),
        shipping_gross=_taxed(data.get("shippingPrice"), "gross"),
        voucher_code=data.get("voucherCode"),
        lines=lines,
        payment=payment,
        paid_at=paid_at,
        fulfilled_at=fulfilled_at,
        cancelled_at=issued_at if status == "CANCELED" else None,
    )


def _number(value: Any) -> str:
    if type(value) is float:
        _exact(value)
    return str(value or "")


def _quantity(value: Any) -> int:
    """``int(value)``, which of a float is exact only where ``_exact`` lets it through."""
    if type(value) is float:
        _exact(value)
    return int(value)


def _refunded_quantities(data: Mapping[str, Any]) -> dict[str, int] | None:
    """Refunded units per order line, or ``None`` when the payload does not say.

    Refunds show up either as refunded fulfillments or as granted refunds with lines; the same
    units can appear in both, so per line we take the larger figure rather than the sum."""
    by_fulfillment: dict[str, int] = {}
    by_grant: dict[str, int] = {}
    known = False
    for fulfillment in data.get("fulfillments") or []:
        if "lines" not in fulfillment:
            continue
        known = True
        if _upper(fulfillment.get("status")) not in REFUNDED_FULFILLMENT_STATUSES:
            continue
        _add_quantities(by_fulfillment, fulfillment.get("lines") or ())
    for grant in data.get("grantedRefunds") or []:
        if "lines" not in grant:
            continue
        known = True
        if _upper(grant.get("status")) != "SUCCESS":
            continue
        _add_quantities(by_grant, grant.get("lines") or ())
    if not known:
        return None
    keys = set(by_fulfillment) | set(by_grant)
    return {k: max(by_fulfillment.get(k, 0), by_grant.get(k, 0)) for k in keys}


def _add_quantities(totals: dict[str, int], lines: Iterable[Any]) -> None:
    """Add each line's quantity to ``totals`` under its order line's id (lines without one are
    skipped). A line is a dict of a parsed tree or msgspec's ``order_schema.QuantityLine``,
    read alike: a missing or null ``orderLine`` and a missing ``id`` give no id, a missing
    ``quantity`` of a counted line is the dict's ``KeyError``."""
    for line in lines:
        if type(line) is _QuantityStruct:
            node = line.orderLine
            line_id = node.id if node is not None else None
            if line_id:
                quantity = line.quantity
                if quantity is _MISSING:
                    raise KeyError("quantity")
                totals[line_id] = totals.get(line_id, 0) + _quantity(quantity)
            continue
        line_id = (line.get("orderLine") or {}).get("id")
        if line_id:
            totals[line_id] = totals.get(line_id, 0) + _quantity(line["quantity"])


def _attributes(product: dict[str, Any]) -> tuple[str, ...] | None:
    """Saleor's selected attributes as sorted "attribute:value" strings; None when the payload
    did not ask for them (older subscriptions), so a fill-in never overwrites with nothing."""
    return _selected_attributes(product.get("attributes"))


def _selected_attributes(selected: Any) -> tuple[str, ...] | None:
    if selected is None:
        return None
    pairs = set()
    for item in selected:
        slug = (item.get("attribute") or {}).get("slug")
        if not slug:
            continue
        for value in item.get("values") or []:
            if value.get("slug"):
                for part in (slug, value["slug"]):
                    if type(part) is float:
                        _exact(part)
                pairs.add(f"{slug}:{value['slug']}")
    return tuple(sorted(pairs))


def _subscription_line(
    data: Mapping[str, Any], refunded_by_line: dict[str, int] | None
) -> OrderLineSnapshot:
    # The hottest function of a translation (a snapshot per line, ~18 lines per order): the
    # nested nodes are looked up once each instead of once per field, and the three prices
    # are read inline from the float-amount cache (see ``_line_price``).
    get = data.get
    variant = get("variant") or _NO_NODE
    product = variant.get("product") or _NO_NODE
    product_get = product.get
    category = product_get("category") or _NO_NODE
    product_type = product_get("productType") or _NO_NODE
    unit_price = get("unitPrice")
    total_price = get("totalPrice")
    gross_node = unit_price.get("gross") if unit_price else None
    net_node = unit_price.get("net") if unit_price else None
    total_node = total_price.get("gross") if total_price else None
    amounts = _FLOAT_AMOUNTS
    value = gross_node.get("amount") if gross_node else None
    unit_gross = (amounts.get(value) if type(value) is float else None) or _line_price(gross_node)
    value = net_node.get("amount") if net_node else None
    unit_net = (amounts.get(value) if type(value) is float else None) or _line_price(net_node)
    value = total_node.get("amount") if total_node else None
    total_gross = (amounts.get(value) if type(value) is float else None) or _line_price(total_node)
    quantity = data["quantity"]
    quantity = _quantity(quantity) if type(quantity) is float else int(quantity)
    line_id = data["id"]
    refunded = None
    if refunded_by_line is not None:
        refunded = min(quantity, refunded_by_line.get(line_id, 0))
    product_name = get("productName") or ""
    variant_name = get("variantName") or ""
    variant_id = variant.get("id") or get("productVariantId")
    product_id = product_get("id")
    product_slug = product_get("slug")
    category_id = category.get("id")
    category_slug = category.get("slug")
    type_id = product_type.get("id")
    type_slug = product_type.get("slug")
    attributes = None if product_get("attributes") is None else _attributes(product)
    sku = get("productSku") or variant.get("sku")
    fulfilled = get("quantityFulfilled")
    # The values taken as they are: a float among them (never, from Saleor) may be an integer
    # literal orjson rounded (``_order_from_unscanned``).
    if (
        type(line_id) is float
        or type(product_name) is float
        or type(variant_name) is float
        or type(variant_id) is float
        or type(product_id) is float
        or type(product_slug) is float
        or type(category_id) is float
        or type(category_slug) is float
        or type(type_id) is float
        or type(type_slug) is float
        or type(sku) is float
        or type(fulfilled) is float
    ):
        _exact_all(
            line_id,
            product_name,
            variant_name,
            variant_id,
            product_id,
            product_slug,
            category_id,
            category_slug,
            type_id,
            type_slug,
            sku,
            fulfilled,
        )
    return new_line(  # OrderLineSnapshot's fields in declaration order
        line_id,
        product_name,
        variant_name,
        quantity,
        unit_gross,
        unit_net,
        total_gross,
        variant_id,
        product_id,
        product_slug,
        category_id,
        category_slug,
        type_id,
        type_slug,
        attributes,
        sku,
        fulfilled,
        refunded,
    )


def _struct_line(data: Any, refunded_by_line: dict[str, int] | None) -> OrderLineSnapshot:
    """``_subscription_line`` for a line msgspec decoded (``order_schema.SelectedLine``, or
    ``order_schema.Line``): the same snapshot from the same values, read from slots. A node is
    None where the dict path had a missing, null or empty node, and a missing field None where
    its ``.get`` gave None; the floats ``_subscription_line`` checks are exact here (msgspec
    reads integer literals beyond 64 bits as ints), so there is nothing to check. The variant
    node's values come from ``_variant_facts`` (raw text, decoded once per distinct text)."""
    variant = data.variant
    if type(variant) is _RawText:
        key = bytes(variant)
        facts = _VARIANT_FACTS.get(key) or _variant_facts(key)
    else:
        facts = _node_facts(variant)
    unit_price = data.unitPrice
    total_price = data.totalPrice
    amounts = _FLOAT_AMOUNTS
    if unit_price is not None:
        node = unit_price.gross
        value = node.amount if node is not None else None
        unit_gross = (amounts.get(value) if type(value) is float else None) or _line_amount(value)
        node = unit_price.net
        value = node.amount if node is not None else None
        unit_net = (amounts.get(value) if type(value) is float else None) or _line_amount(value)
    else:
        unit_gross = unit_net = ZERO
    if total_price is not None:
        node = total_price.gross
        value = node.amount if node is not None else None
        total_gross = (amounts.get(value) if type(value) is float else None) or _line_amount(value)
    else:
        total_gross = ZERO
    quantity = data.quantity
    line_id = data.id
    if quantity is _MISSING or line_id is _MISSING:
        raise KeyError("quantity" if quantity is _MISSING else "id")
    quantity = _quantity(quantity) if type(quantity) is float else int(quantity)
    refunded = None
    if refunded_by_line is not None:
        refunded = min(quantity, refunded_by_line.get(line_id, 0))
    (
        variant_id,
        variant_sku,
        product_id,
        product_slug,
        category_id,
        category_slug,
        type_id,
        type_slug,
        attributes,
    ) = facts
    return new_line(  # OrderLineSnapshot's fields in declaration order
        line_id,
        data.productName or "",
        data.variantName or "",
        quantity,
        unit_gross,
        unit_net,
        total_gross,
        variant_id or data.productVariantId,
        product_id,
        product_slug,
        category_id,
        category_slug,
        type_id,
        type_slug,
        attributes,
        data.productSku or variant_sku,
        data.quantityFulfilled,
        refunded,
    )


# A variant node's raw text -> ``_node_facts`` of it. The text of one variant is the same on
# every line of every order that sells it (a shop's catalogue, not its orders, bounds the
# distinct texts), and decoding it built four structs and six strings per line, a fifth of
# a body's decode. The facts are a pure function of the text (a JSON value decodes alike
# alone or inside the body) and hold only immutable values (strings, None, a tuple of
# strings), so sharing them between snapshots is what building them again would give.
_VARIANT_FACTS: dict[bytes, tuple[Any, ...]] = {}
_VARIANT_FACTS_MAX = 20_000


def _variant_facts(key: bytes) -> tuple[Any, ...]:
    """``_node_facts`` of the variant node whose text is ``key``, decoded by the schema's
    ``VariantNode`` (an error propagates, as the body's decode of that node would have
    raised it: the selective path then gives up) and remembered."""
    facts = _node_facts(_VARIANT_DECODE(key))  # type: ignore[misc]
    if len(_VARIANT_FACTS) >= _VARIANT_FACTS_MAX:
        _VARIANT_FACTS.clear()
    _VARIANT_FACTS[key] = facts
    return facts


def _node_facts(variant: Any) -> tuple[Any, ...]:
    """What a line's snapshot takes from its decoded variant node (``order_schema.LineVariant``
    or None): the variant's id and SKU (the line's own ``productVariantId``/``productSku`` are
    read besides them), the product's id and slug, its category's and type's ids and slugs,
    and its selected attributes."""
    if variant is None:
        return (None, None, None, None, None, None, None, None, None)
    product = variant.product
    if product is None:
        return (variant.id, variant.sku, None, None, None, None, None, None, None)
    category = product.category
    product_type = product.productType
    return (
        variant.id,
        variant.sku,
        product.id,
        product.slug,
        category.id if category is not None else None,
        category.slug if category is not None else None,
        product_type.id if product_type is not None else None,
        product_type.slug if product_type is not None else None,
        None if product.attributes is None else _selected_attributes(product.attributes),
    )


def _line_amount(value: Any) -> Decimal:
    """``_line_price`` of a node whose amount is ``value`` (None: no node, or no amount)."""
    return _money(_NO_NODE if value is None else {"amount": value}) or ZERO


def _exact_all(*values: Any) -> None:
    for value in values:
        if type(value) is float:
            _exact(value)


def _line_price(node: Mapping[str, Any] | None) -> Decimal:
    """A line price as ``_money(node) or ZERO`` gives it (a missing price is zero, and so is
    one that rounds to zero, either sign), for what the inline cache read could not answer:
    not a float, zero, not seen yet, or a zero that the cache holds (a float below half a
    thousandth)."""
    return _money(node) or ZERO


def parse_subscription_customer(data: Mapping[str, Any]) -> CustomerSnapshot:
    address = data.get("defaultBillingAddress") or data.get("defaultShippingAddress") or {}
    country = (address.get("country") or {}).get("code") if address else None
    metadata = {item["key"]: item["value"] for item in data.get("metadata") or []}
    language = data.get("languageCode")
    return new_customer(
        saleor_user_id=data["id"],
        email=_email(data.get("email")),
        first_name=data.get("firstName") or "",
        last_name=data.get("lastName") or "",
        is_active=data.get("isActive"),
        is_confirmed=data.get("isConfirmed"),
        date_joined=parse_datetime(data.get("dateJoined")),
        updated_at=parse_datetime(data.get("updatedAt")),
        language_code=language.lower() if language else None,
        country_code=country or None,
        metadata=metadata,
    )


# -- legacy style ----------------------------------------------------------------------------


def _from_legacy(kind: EventKind, body: list[Any], api_url: str) -> CrmEvent:
    if len(body) != 1 or not isinstance(body[0], dict):
        raise PayloadError("Legacy payload must be a one-element array.")
    data = body[0]
    issued_at = parse_datetime((data.get("meta") or {}).get("issued_at"))
    if issued_at is None:
        raise PayloadError("Legacy payload has no meta.issued_at.")
    if kind.is_order:
        if data.get("type") != "Order":
            raise PayloadError(f"{kind.value} legacy payload is not an Order.")
        order = _legacy_order(kind, data, issued_at)
        return new_event(
            kind=kind,
            source=EventSource.LEGACY,
            object_id=order.saleor_order_id,
            issued_at=issued_at,
            saleor_api_url=api_url,
            order=order,
        )
    if data.get("type") != "User":
        raise PayloadError(f"{kind.value} legacy payload is not a User.")
    address = data.get("default_billing_address") or data.get("default_shipping_address") or {}
    language = data.get("language_code")
    customer = CustomerSnapshot(
        saleor_user_id=data["id"],
        email=_email(data.get("email")),
        first_name=data.get("first_name") or "",
        last_name=data.get("last_name") or "",
        is_active=data.get("is_active"),
        date_joined=parse_datetime(data.get("date_joined")),
        language_code=language.lower() if language else None,
        country_code=(address.get("country") or None) if address else None,
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
    )
    return new_event(
        kind=kind,
        source=EventSource.LEGACY,
        object_id=customer.saleor_user_id,
        issued_at=issued_at,
        saleor_api_url=api_url,
        customer=customer,
    )


def _legacy_order(kind: EventKind, data: dict[str, Any], issued_at: datetime) -> OrderSnapshot:
    channel = data["channel"]
    status = (data.get("status") or "unconfirmed").upper()
    total_gross = to_decimal(data.get("total_gross_amount"))
    fulfilled_by_variant, refunded_by_variant = _legacy_fulfilled_quantities(data)
    raw_lines = data.get("lines") or []
    variant_counts: dict[str, int] = {}
    for line in raw_lines:
        vid = line.get("product_variant_id") or ""
        variant_counts[vid] = variant_counts.get(vid, 0) + 1
    lines = []
    for line in raw_lines:
        vid = line.get("product_variant_id")
        # Legacy fulfillment lines name the variant, not the order line: only attribute them
        # when the variant is on exactly one order line.
        unambiguous = bool(vid) and variant_counts.get(vid or "", 0) == 1
        quantity = int(line["quantity"])
        lines.append(
            OrderLineSnapshot(
                saleor_line_id=line["id"],
                product_name=line.get("product_name") or "",
                variant_name=line.get("variant_name") or "",
                quantity=quantity,
                quantity_fulfilled=min(quantity, fulfilled_by_variant.get(vid, 0))
                if unambiguous
                else None,
                quantity_refunded=min(quantity, refunded_by_variant.get(vid, 0))
                if unambiguous
                else None,
                unit_price_gross=amount(line.get("unit_price_gross_amount")),
                unit_price_net=amount(line.get("unit_price_net_amount")),
                total_price_gross=amount(line.get("total_price_gross_amount")),
                variant_id=vid,
                sku=line.get("product_sku"),
            )
        )
    payment = None
    if kind == EventKind.ORDER_FULLY_PAID and total_gross is not None:
        payment = PaymentSnapshot(
            total_charged=total_gross, total_refunded=ZERO, charge_status="FULL", inferred=True
        )
    elif kind == EventKind.ORDER_FULLY_REFUNDED and total_gross is not None:
        payment = PaymentSnapshot(
            total_charged=ZERO, total_refunded=total_gross, charge_status=None, inferred=True
        )
    fulfillments = data.get("fulfillments") or []
    fulfilled_at = _min_date(
        parse_datetime(f.get("created"))
        for f in fulfillments
        if (f.get("status") or "").upper() in SHIPPED_FULFILLMENT_STATUSES
    )
    if fulfilled_at is None and kind == EventKind.ORDER_FULFILLED:
        fulfilled_at = issued_at
    return OrderSnapshot(
        saleor_order_id=data["id"],
        number=str(data.get("number") or ""),
        channel_id=channel["id"],
        channel_slug=channel.get("slug"),
        currency=channel.get("currency_code") or "",
        status=status,
        origin=(data.get("origin") or "").upper() or None,
        created_at=parse_datetime(data["created"]),  # type: ignore[arg-type]
        user_email=_email(data.get("user_email")),
        total_gross=total_gross,
        total_net=to_decimal(data.get("total_net_amount")),
        shipping_gross=to_decimal(data.get("shipping_price_gross_amount")),
        lines=tuple(lines),
        payment=payment,
        paid_at=issued_at if kind == EventKind.ORDER_FULLY_PAID else None,
        fulfilled_at=fulfilled_at,
        cancelled_at=issued_at if status == "CANCELED" else None,
    )


def _legacy_fulfilled_quantities(data: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    fulfilled: dict[str, int] = {}
    refunded: dict[str, int] = {}
    for fulfillment in data.get("fulfillments") or []:
        status = (fulfillment.get("status") or "").upper()
        for line in fulfillment.get("lines") or []:
            vid = line.get("product_variant_id")
            if not vid:
                continue
            qty = int(line.get("quantity") or 0)
            if status in SHIPPED_FULFILLMENT_STATUSES:
                fulfilled[vid] = fulfilled.get(vid, 0) + qty
            if status in REFUNDED_FULFILLMENT_STATUSES:
                refunded[vid] = refunded.get(vid, 0) + qty
    return fulfilled, refunded
