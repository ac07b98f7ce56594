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


class Ref(TypedDict, total=False):
    id: Any
    slug: Any


class Slug(TypedDict, total=False):
    slug: Any


class SelectedAttribute(TypedDict, total=False):
    attribute: Slug | None
    values: list[Slug] | None


class Product(TypedDict, total=False):
    id: Any
    slug: Any
    category: Ref | None
    productType: Ref | None
    attributes: list[SelectedAttribute] | None


class Variant(TypedDict, total=False):
    id: Any
    sku: Any
    product: Product | None


class Line(TypedDict, total=False):
    id: Any
    productName: Any
    variantName: Any
    productSku: Any
    productVariantId: Any
    variant: Variant | None
    quantity: Any
    quantityFulfilled: Any
    unitPrice: Taxed | None
    totalPrice: Taxed | None


class LineRef(TypedDict, total=False):
    id: Any


class QuantityLine(TypedDict, total=False):
    quantity: Any
    orderLine: LineRef | None


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
