"""Turn UCI Online Retail invoices into the webhook deliveries a Saleor store would send.

Bodies have the shape of our manifest's subscription payloads (the ``CrmOrder`` /
``CrmCustomer`` fragments, as in ``tests/contract/payloads``), so the demo and the benchmarks
exercise the real endpoint, signature check, parser and projection.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from saleor_crm_plugin.core.ids import to_global_id

EXTRACT = "uci_online_retail_extract.csv.gz"
CHANNEL = {"id": to_global_id("Channel", 1), "slug": "default-channel", "currencyCode": "GBP"}
SHIPPING_CODES = frozenset({"POST", "DOT", "C2"})
NAMESPACE = uuid.UUID("8d0e6f1c-5b55-4c0a-9d6b-6a0d5f3c2e11")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Row:
    invoice: str
    stock_code: str
    description: str
    quantity: int
    at: datetime
    unit_price: Decimal
    customer_id: str
    country: str


@dataclass
class Line:
    line_id: str
    row: Row
    refunded: int = 0


@dataclass
class Invoice:
    number: str
    customer_id: str
    at: datetime
    lines: list[Line] = field(default_factory=list)
    shipping: Decimal = Decimal(0)
    refunds: list[tuple[datetime, dict[str, int], Decimal]] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return to_global_id("Order", uuid.uuid5(NAMESPACE, self.number))

    @property
    def subtotal(self) -> Decimal:
        return sum(
            (_money(line.row.unit_price * line.row.quantity) for line in self.lines), Decimal(0)
        )

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.shipping


@dataclass(frozen=True)
class Delivery:
    event: str  # the Saleor-Event header, lower-case
    at: datetime
    body: bytes
    object_id: str


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def read_rows(path: Path | None = None) -> list[Row]:
    """Rows with a customer, from the bundled extract or a UCI-format CSV (plain or gzip)."""
    if path is None:
        raw = resources.files("saleor_crm_plugin.demo").joinpath("data", EXTRACT).read_bytes()
        text = gzip.decompress(raw).decode("utf-8")
    elif str(path).endswith(".gz"):
        text = gzip.decompress(Path(path).read_bytes()).decode("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        if not record["CustomerID"]:
            continue
        rows.append(
            Row(
                invoice=record["InvoiceNo"],
                stock_code=record["StockCode"].strip(),
                description=(record["Description"] or "").strip(),
                quantity=int(record["Quantity"]),
                at=datetime.fromisoformat(record["InvoiceDate"]).replace(tzinfo=UTC),
                unit_price=Decimal(record["UnitPrice"]),
                customer_id=str(int(float(record["CustomerID"]))),
                country=record["Country"],
            )
        )
    return rows


def is_product(code: str) -> bool:
    return code[:1].isdigit()


def category_of(description: str) -> str:
    """UCI has no categories; the last word of the description ("... T-LIGHT HOLDER") is a
    fair stand-in ("holder") for cold-start item features."""
    words = [w for w in description.lower().replace(",", " ").split() if w.isalpha()]
    return words[-1] if words else "other"


class Catalog:
    """Stable Saleor-like integer ids for stock codes and categories."""

    def __init__(self, rows: Iterable[Row]) -> None:
        codes = sorted({r.stock_code for r in rows if is_product(r.stock_code)})
        self.product_pk = {code: n for n, code in enumerate(codes, start=1)}
        self.names: dict[str, str] = {}
        for row in rows:
            if row.description and row.stock_code not in self.names:
                self.names[row.stock_code] = row.description
        categories = sorted({category_of(self.names.get(c, "")) for c in codes})
        self.category_pk = {slug: n for n, slug in enumerate(categories, start=1)}

    def product(self, code: str) -> dict[str, Any]:
        name = self.names.get(code, code)
        slug = category_of(name)
        return {
            "id": to_global_id("Product", self.product_pk[code]),
            "name": name,
            "slug": f"p-{code.lower()}",
            "category": {"id": to_global_id("Category", self.category_pk[slug]), "slug": slug},
        }

    def variant_id(self, code: str) -> str:
        return to_global_id("ProductVariant", self.product_pk[code])


def build_invoices(rows: list[Row], *, shift: timedelta) -> list[Invoice]:
    """Group rows into orders, and turn cancellation invoices into refunds of the customer's
    most recent earlier order of the same product."""
    invoices: dict[str, Invoice] = {}
    cancellations: list[Row] = []
    for row in sorted(rows, key=lambda r: (r.at, r.invoice)):
        if row.invoice.startswith("C") or row.quantity < 0:
            if is_product(row.stock_code):
                cancellations.append(row)
            continue
        if row.unit_price <= 0 or row.invoice.startswith("A"):
            continue
        invoice = invoices.get(row.invoice)
        if invoice is None:
            invoice = invoices[row.invoice] = Invoice(row.invoice, row.customer_id, row.at + shift)
        if row.stock_code in SHIPPING_CODES:
            invoice.shipping += _money(row.unit_price * row.quantity)
        elif is_product(row.stock_code):
            line_id = to_global_id(
                "OrderLine", uuid.uuid5(NAMESPACE, f"{row.invoice}:{len(invoice.lines)}")
            )
            invoice.lines.append(Line(line_id, row))
    orders = [i for i in invoices.values() if i.lines]
    by_customer: dict[str, list[Invoice]] = defaultdict(list)
    for invoice in orders:
        by_customer[invoice.customer_id].append(invoice)
    grouped: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    refund_at: dict[tuple[str, str], datetime] = {}
    for row in cancellations:
        at = row.at + shift
        candidates = [i for i in by_customer.get(row.customer_id, []) if i.at < at]
        for invoice in reversed(candidates):
            line = next(
                (
                    ln
                    for ln in invoice.lines
                    if ln.row.stock_code == row.stock_code and ln.row.quantity > ln.refunded
                ),
                None,
            )
            if line is None:
                continue
            units = min(-row.quantity, line.row.quantity - line.refunded)
            line.refunded += units
            key = (invoice.number, row.invoice)
            grouped[key][line.line_id] = grouped[key].get(line.line_id, 0) + units
            refund_at[key] = at
            break
    index = {i.number: i for i in orders}
    for (number, _), lines in sorted(grouped.items(), key=lambda kv: refund_at[kv[0]]):
        invoice = index[number]
        unit = {ln.line_id: ln.row.unit_price for ln in invoice.lines}
        amount = sum((_money(unit[lid] * qty) for lid, qty in lines.items()), Decimal(0))
        invoice.refunds.append((refund_at[(number, _)], lines, amount))
    for invoice in orders:
        for line in invoice.lines:
            line.refunded = 0  # replayed event by event below
    return sorted(orders, key=lambda i: (i.at, i.number))


def _m(value: Decimal) -> dict[str, Any]:
    return {"amount": float(value), "currency": CHANNEL["currencyCode"]}


def _user(customer_id: str) -> dict[str, Any]:
    return {
        "id": to_global_id("User", customer_id),
        "email": f"customer{customer_id}@example.com",
        "firstName": "",
        "lastName": f"Customer {customer_id}",
    }


def _envelope(typename: str, at: datetime) -> dict[str, Any]:
    return {
        "__typename": typename,
        "issuedAt": (at + timedelta(milliseconds=40)).isoformat(),
        "version": "3.23.28",
        "issuingPrincipal": {
            "__typename": "App",
            "id": to_global_id("App", 1),
            "name": "Storefront",
        },
        "recipient": {"id": to_global_id("App", 2), "name": "Saleor CRM"},
    }


def customer_body(customer_id: str, country: str, at: datetime) -> dict[str, Any]:
    user = _user(customer_id)
    address = {"city": "", "postalCode": "", "country": {"code": country_code(country)}}
    return {
        **_envelope("CustomerCreated", at),
        "user": {
            **user,
            "isActive": True,
            "isConfirmed": True,
            "dateJoined": at.isoformat(),
            "updatedAt": at.isoformat(),
            "lastLogin": None,
            "languageCode": "EN",
            "note": None,
            "externalReference": f"uci:{customer_id}",
            "metadata": [],
            "defaultBillingAddress": address,
            "defaultShippingAddress": address,
        },
    }


def order_body(
    typename: str,
    invoice: Invoice,
    catalog: Catalog,
    *,
    at: datetime,
    fulfilled_at: datetime | None,
    refunds: list[tuple[datetime, dict[str, int], Decimal]],
) -> dict[str, Any]:
    refunded = sum((amount for _, _, amount in refunds), Decimal(0))
    total = invoice.total
    transactions_events = [
        {
            "id": to_global_id("TransactionEvent", f"{invoice.number}-charge"),
            "type": "CHARGE_SUCCESS",
            "pspReference": f"psp-{invoice.number}",
            "amount": _m(total),
            "createdAt": invoice.at.isoformat(),
        }
    ] + [
        {
            "id": to_global_id("TransactionEvent", f"{invoice.number}-refund-{n}"),
            "type": "REFUND_SUCCESS",
            "pspReference": f"psp-{invoice.number}-r{n}",
            "amount": _m(amount),
            "createdAt": when.isoformat(),
        }
        for n, (when, _, amount) in enumerate(refunds)
    ]
    lines = []
    for line in invoice.lines:
        row = line.row
        lines.append(
            {
                "id": line.line_id,
                "productName": catalog.names.get(row.stock_code, row.stock_code),
                "variantName": row.stock_code,
                "productSku": row.stock_code,
                "productVariantId": catalog.variant_id(row.stock_code),
                "variant": {
                    "id": catalog.variant_id(row.stock_code),
                    "sku": row.stock_code,
                    "product": catalog.product(row.stock_code),
                },
                "quantity": row.quantity,
                "quantityFulfilled": row.quantity if fulfilled_at else 0,
                "unitPrice": {"gross": _m(row.unit_price), "net": _m(row.unit_price)},
                "totalPrice": {"gross": _m(_money(row.unit_price * row.quantity))},
            }
        )
    fulfillments = []
    if fulfilled_at:
        fulfillments.append(
            {
                "id": to_global_id("Fulfillment", invoice.number),
                "fulfillmentOrder": 1,
                "status": "FULFILLED",
                "created": fulfilled_at.isoformat(),
                "trackingNumber": f"UK{invoice.number}",
                "warehouse": {"id": to_global_id("Warehouse", 1), "slug": "uk"},
                "lines": [
                    {
                        "id": to_global_id("FulfillmentLine", ln.line_id),
                        "quantity": ln.row.quantity,
                        "orderLine": {"id": ln.line_id},
                    }
                    for ln in invoice.lines
                ],
            }
        )
    status = "FULFILLED" if fulfilled_at else "UNFULFILLED"
    charged = total - refunded
    return {
        **_envelope(typename, at),
        "order": {
            "id": invoice.order_id,
            "number": invoice.number,
            "created": invoice.at.isoformat(),
            "updatedAt": at.isoformat(),
            "status": status,
            "origin": "CHECKOUT",
            "original": None,
            "userEmail": f"customer{invoice.customer_id}@example.com",
            "user": _user(invoice.customer_id),
            "channel": CHANNEL,
            "isPaid": True,
            "paymentStatus": "FULLY_CHARGED" if not refunded else "PARTIALLY_REFUNDED",
            "chargeStatus": "FULL" if charged >= total else ("NONE" if charged <= 0 else "PARTIAL"),
            "authorizeStatus": "FULL",
            "total": {"gross": _m(total), "net": _m(total), "tax": _m(Decimal(0))},
            "subtotal": {"gross": _m(invoice.subtotal)},
            "shippingPrice": {"gross": _m(invoice.shipping)},
            "totalCharged": _m(charged),
            "totalRefunded": _m(refunded),
            "totalGrantedRefund": _m(refunded),
            "totalBalance": _m(Decimal(0) - refunded if refunded else Decimal(0)),
            "voucherCode": None,
            "customerNote": "",
            "languageCodeEnum": "EN",
            "metadata": [],
            "lines": lines,
            "transactions": [
                {
                    "id": to_global_id("TransactionItem", invoice.order_id),
                    "name": "Card",
                    "pspReference": f"psp-{invoice.number}",
                    "chargedAmount": _m(charged),
                    "refundedAmount": _m(refunded),
                    "events": transactions_events,
                }
            ],
            "grantedRefunds": [
                {
                    "id": to_global_id("OrderGrantedRefund", f"{invoice.number}-{n}"),
                    "amount": _m(amount),
                    "reason": "Cancelled in the UCI data",
                    "status": "SUCCESS",
                    "lines": [
                        {
                            "id": to_global_id("OrderGrantedRefundLine", f"{lid}-{n}"),
                            "quantity": qty,
                            "orderLine": {"id": lid},
                        }
                        for lid, qty in sorted(units.items())
                    ],
                }
                for n, (_, units, amount) in enumerate(refunds)
            ],
            "fulfillments": fulfillments,
        },
    }


def country_code(country: str) -> str:
    return _COUNTRIES.get(country, "GB")


_COUNTRIES = {
    "United Kingdom": "GB",
    "France": "FR",
    "Germany": "DE",
    "EIRE": "IE",
    "Spain": "ES",
    "Netherlands": "NL",
    "Belgium": "BE",
    "Switzerland": "CH",
    "Portugal": "PT",
    "Australia": "AU",
    "Norway": "NO",
    "Italy": "IT",
    "Channel Islands": "JE",
    "Finland": "FI",
    "Cyprus": "CY",
    "Sweden": "SE",
    "Austria": "AT",
    "Denmark": "DK",
    "Japan": "JP",
    "Poland": "PL",
    "USA": "US",
    "Israel": "IL",
    "Hong Kong": "HK",
    "Singapore": "SG",
    "Iceland": "IS",
    "Canada": "CA",
    "Greece": "GR",
    "Malta": "MT",
    "United Arab Emirates": "AE",
    "European Community": "EU",
    "RSA": "ZA",
    "Lebanon": "LB",
    "Lithuania": "LT",
    "Brazil": "BR",
    "Czech Republic": "CZ",
    "Bahrain": "BH",
    "Saudi Arabia": "SA",
    "Unspecified": "GB",
}


def deliveries(rows: list[Row], *, now: datetime | None = None) -> Iterator[Delivery]:
    """Every delivery in the order Saleor would send them: the customer on first purchase,
    each order when paid and when fulfilled (the next day), and a refund event per
    cancellation invoice. Dates move so that the last invoice falls on yesterday."""
    now = now or datetime.now(UTC)
    last = max(r.at for r in rows)
    shift = (now - timedelta(days=1)).replace(hour=last.hour, minute=last.minute) - last
    shift = timedelta(days=shift.days)
    catalog = Catalog(rows)
    invoices = build_invoices(rows, shift=shift)
    countries = {r.customer_id: r.country for r in rows}
    items: list[tuple[datetime, str, str, dict[str, Any]]] = []
    seen: set[str] = set()
    for invoice in invoices:
        if invoice.customer_id not in seen:
            seen.add(invoice.customer_id)
            joined = invoice.at - timedelta(minutes=5)
            items.append(
                (
                    joined,
                    "customer_created",
                    to_global_id("User", invoice.customer_id),
                    customer_body(invoice.customer_id, countries[invoice.customer_id], joined),
                )
            )
        paid_at = invoice.at + timedelta(seconds=2)
        fulfilled = invoice.at + timedelta(days=1)
        items.append(
            (
                paid_at,
                "order_fully_paid",
                invoice.order_id,
                order_body(
                    "OrderFullyPaid", invoice, catalog, at=paid_at, fulfilled_at=None, refunds=[]
                ),
            )
        )
        items.append(
            (
                fulfilled,
                "order_fulfilled",
                invoice.order_id,
                order_body(
                    "OrderFulfilled",
                    invoice,
                    catalog,
                    at=fulfilled,
                    fulfilled_at=fulfilled,
                    refunds=[r for r in invoice.refunds if r[0] <= fulfilled],
                ),
            )
        )
        for n in range(len(invoice.refunds)):
            when = invoice.refunds[n][0]
            done = invoice.refunds[: n + 1]
            full = sum((a for _, _, a in done), Decimal(0)) >= invoice.total
            typename, event = (
                ("OrderFullyRefunded", "order_fully_refunded")
                if full
                else ("OrderRefunded", "order_refunded")
            )
            at = max(when, invoice.at + timedelta(seconds=3))
            items.append(
                (
                    at,
                    event,
                    invoice.order_id,
                    order_body(
                        typename,
                        invoice,
                        catalog,
                        at=at,
                        fulfilled_at=fulfilled if fulfilled <= at else None,
                        refunds=done,
                    ),
                )
            )
    items.sort(key=lambda item: (item[0], item[1]))
    for at, event, object_id, body in items:
        if at > now:
            continue
        yield Delivery(
            event=event,
            at=at,
            object_id=object_id,
            body=json.dumps(body, separators=(", ", ": ")).encode(),
        )
