"""The parts of an order webhook body the translation reads, for a selective decoder.

An order body (~16 kB, ~20 lines) holds much the translation never reads: every money node's
currency, the products' names, the fulfilment lines' own ids, the transactions' references,
the envelope. orjson builds a Python object for each value and key of it and frees them again
(~0.7 M instructions per event, a fifth of a worker's), and the translation then reads each
value by ``dict.get`` with keys that are orjson's strings, not the code's interned constants,
so every hit compares the two by ``memcmp``.

msgspec decodes a body against these ``TypedDict`` types into plain dicts holding only the
keys declared here: the rest is skipped without building objects, and a declared key is the
interned field name, so ``dict.get`` with the code's constant finds it by identity. Values
under a key typed ``Any`` are decoded in full, as ``json.loads`` gives them (integers beyond
64 bits included). A declared node typed ``X | None`` that holds anything but an object or
null, a list that is not a list, or anything msgspec refuses raises, and the caller
translates the body the usual way, so refusals and errors stay ``json.loads``'.

Every key ``from_webhook.parse_subscription_order`` and ``_subscription_line`` read must be
declared here (an undeclared key reads as missing): ``tests/events/test_selective_orders.py``
compares the translation on this tree with the translation on ``json.loads``' over every
captured order body and mutations of them, and fails for a key left out.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec


class Money(TypedDict, total=False):
    amount: Any


class MoneyWithCurrency(TypedDict, total=False):
    amount: Any
    currency: Any  # the order total's, read when the channel has no currency code


class Taxed(TypedDict, total=False):
    gross: Money | None
    net: Money | None
    tax: Money | None


class Total(TypedDict, total=False):
    gross: MoneyWithCurrency | None
    net: Money | None
    tax: Money | None


class Slug(TypedDict, total=False):
    slug: Any


class SelectedAttribute(TypedDict, total=False):
    attribute: Slug | None
    values: list[Slug] | None


# An order's lines (~20 per body, four fifths of its text) are decoded into slotted structs
# rather than dicts: no dict per node nor key insertions, a slot read per field instead of a
# ``dict.get``, and ``gc=False`` (they hold no reference cycles, so the collector need not
# track them). ``from_webhook._struct_line`` reads them as ``_subscription_line`` reads the
# dicts. A struct is truthy even with every field missing, where an empty dict is falsy; the
# line translation only reads fields of its nodes, which are None either way. ``MISSING``
# marks the two keys the translation subscripts (``data["id"]``, ``data["quantity"]``), so a
# line without them fails as the dict's ``KeyError`` does.
MISSING: Any = msgspec.UNSET


class LineMoney(msgspec.Struct, gc=False):
    amount: Any = None


class LinePrice(msgspec.Struct, gc=False):
    gross: LineMoney | None = None
    net: LineMoney | None = None


class LineRefNode(msgspec.Struct, gc=False):
    id: Any = None
    slug: Any = None


class LineProduct(msgspec.Struct, gc=False):
    id: Any = None
    slug: Any = None
    category: LineRefNode | None = None
    productType: LineRefNode | None = None  # Saleor's camelCase keys, here and in Line
    attributes: list[SelectedAttribute] | None = None


class LineVariant(msgspec.Struct, gc=False):
    id: Any = None
    sku: Any = None
    product: LineProduct | None = None


class Line(msgspec.Struct, gc=False):
    id: Any = MISSING
    productName: Any = None
    variantName: Any = None
    productSku: Any = None
    productVariantId: Any = None
    variant: LineVariant | None = None
    quantity: Any = MISSING
    quantityFulfilled: Any = None
    unitPrice: LinePrice | None = None
    totalPrice: LinePrice | None = None


# A fulfilment's or granted refund's lines (one per order line a fulfilment ships: ~20 per
# fulfilled order) as slotted structs too, for the same reasons as an order's lines; only a
# refunded fulfilment's or a successful grant's are read (``from_webhook._refunded_quantities``
# and ``_struct_quantities``), but every one is decoded. ``quantity`` is subscripted by the
# dict path, so a missing one is ``MISSING`` (the dict's ``KeyError``).
class LineRef(msgspec.Struct, gc=False):
    id: Any = None


class QuantityLine(msgspec.Struct, gc=False):
    quantity: Any = MISSING
    orderLine: LineRef | None = None


class Fulfillment(TypedDict, total=False):
    status: Any
    created: Any
    lines: list[QuantityLine] | None


class GrantedRefund(TypedDict, total=False):
    status: Any
    lines: list[QuantityLine] | None


class TransactionEvent(TypedDict, total=False):
    type: Any
    createdAt: Any


class Transaction(TypedDict, total=False):
    events: list[TransactionEvent] | None


class Channel(TypedDict, total=False):
    id: Any
    slug: Any
    currencyCode: Any


class User(TypedDict, total=False):
    id: Any
    email: Any
    firstName: Any
    lastName: Any


class Order(TypedDict, total=False):
    id: Any
    number: Any
    channel: Channel | None
    user: User | None
    userEmail: Any
    status: Any
    origin: Any
    created: Any
    updatedAt: Any
    voucherCode: Any
    chargeStatus: Any
    authorizeStatus: Any
    total: Total | None
    subtotal: Taxed | None
    shippingPrice: Taxed | None
    totalCharged: Money | None
    totalRefunded: Money | None
    totalGrantedRefund: Money | None
    lines: list[Line] | None
    fulfillments: list[Fulfillment] | None
    grantedRefunds: list[GrantedRefund] | None
    transactions: list[Transaction] | None


class OrderBody(TypedDict, total=False):
    """A subscription order event. ``data`` (the top-level subscription form, which the
    translation unwraps) is decoded in full: that form is translated from it as from any tree."""

    data: Any
    issuedAt: Any
    order: Order | None


# What the worker's decoder actually reads: ``OrderBody`` with each line's ``variant`` node
# kept as its raw JSON text (``msgspec.Raw``: checked as JSON, sliced, not built). A variant
# node (its id and SKU, the product's id, slug, category, type and attributes: about a fifth
# of a line's text) is the same text on every line of every order of that variant, so
# ``from_webhook._variant_facts`` decodes each distinct text once, by ``VariantNode`` (the
# very ``LineVariant`` schema above, so the keys read stay the ones declared there) and keeps
# what the snapshot takes from it. ``SelectedLine`` is ``Line`` field for field (built from
# it), only ``variant`` differs; a missing ``variant`` key reads as JSON ``null``, as the
# typed field's default None did.
NULL_RAW = msgspec.Raw(b"null")
SelectedLine = msgspec.defstruct(
    "SelectedLine",
    [
        (f.name, msgspec.Raw, NULL_RAW) if f.name == "variant" else (f.name, f.type, f.default)
        for f in msgspec.structs.fields(Line)
    ],
    gc=False,
    module=__name__,
)
VariantNode = LineVariant | None
SelectedOrder = TypedDict(  # type: ignore[misc]
    "SelectedOrder",
    {**Order.__annotations__, "lines": list[SelectedLine] | None},  # type: ignore[valid-type]
    total=False,
)
SelectedOrderBody = TypedDict(  # type: ignore[misc]
    "SelectedOrderBody",
    {**OrderBody.__annotations__, "order": SelectedOrder | None},  # type: ignore[valid-type]
    total=False,
)
