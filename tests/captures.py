"""Access to the captured Saleor output in ``tests/contract/`` (never edited, never invented)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CONTRACT_DIR = Path(__file__).parent / "contract"
PAYLOAD_DIR = CONTRACT_DIR / "payloads"
CAPTURED_API_URL = "http://127.0.0.1:8000/graphql/"

EVENT_NAMES = [
    "CUSTOMER_CREATED",
    "CUSTOMER_UPDATED",
    "CUSTOMER_DELETED",
    "ORDER_CREATED",
    "ORDER_CONFIRMED",
    "ORDER_FULLY_PAID",
    "ORDER_FULFILLED",
    "ORDER_PAID",
    "ORDER_REFUNDED",
    "ORDER_FULLY_REFUNDED",
    "ORDER_CANCELLED",
]
STYLES = ["subscription", "legacy"]


@dataclass(frozen=True)
class Capture:
    name: str  # e.g. ORDER_FULLY_PAID.subscription
    event: str
    style: str
    headers: dict[str, str]
    raw_body: bytes
    body: Any

    @property
    def signature(self) -> str:
        return self.headers["Saleor-Signature"]

    @property
    def event_header(self) -> str:
        return self.headers["Saleor-Event"]

    @property
    def api_url(self) -> str:
        return self.headers["Saleor-Api-Url"]


@cache
def load_capture(event: str, style: str) -> Capture:
    data = json.loads((PAYLOAD_DIR / f"{event}.{style}.json").read_text())
    return Capture(
        name=f"{event}.{style}",
        event=event,
        style=style,
        headers=data["headers"],
        raw_body=data["raw_body"].encode(),
        body=data["body"],
    )


def all_captures(styles: list[str] | None = None) -> list[Capture]:
    """In the order Saleor sent them (``received_unix_ts``)."""
    index = json.loads((PAYLOAD_DIR / "INDEX.json").read_text())
    captures = [load_capture(e, s) for e in EVENT_NAMES for s in (styles or STYLES)]
    return sorted(captures, key=lambda c: index[f"{c.name}.json"]["received_unix_ts"])


@cache
def jwks() -> dict[str, Any]:
    return json.loads((CONTRACT_DIR / "jwks.json").read_text())


@cache
def app_install() -> dict[str, Any]:
    return json.loads((PAYLOAD_DIR / "app-install.json").read_text())


@cache
def plugin_probe() -> dict[str, Any]:
    return json.loads((CONTRACT_DIR / "plugin-probe.json").read_text())


@cache
def saleor_schema():  # type: ignore[no-untyped-def]
    """Saleor's schema, built with graphql-core 2.3 (what Saleor runs). graphql-core 2 predates
    SDL descriptions and ``&`` between interfaces, so those are normalised away first; types,
    fields and arguments are untouched."""
    from graphql import build_ast_schema, parse

    source = (CONTRACT_DIR / "schema.graphql").read_text()
    source = re.sub(r'"""[\s\S]*?"""', "", source)
    source = re.sub(r'(?m)^\s*"(?:[^"\\]|\\.)*"\s*$', "", source)
    source = re.sub(
        r"(?m)^((?:type|interface)\s+\w+\s+implements\s+)([^{@]+)",
        lambda m: m.group(1) + m.group(2).replace("&", " "),
        source,
    )
    schema = build_ast_schema(parse(source))
    # Custom scalars (DateTime, Decimal, JSONString, ...) come out of the SDL without
    # serializers; their values in captured payloads are already in wire format, so pass them
    # through unchanged when the fake Saleor executes documents.
    from graphql.type.definition import GraphQLScalarType

    builtin = {"String", "Int", "Float", "Boolean", "ID"}
    for name, graphql_type in schema.get_type_map().items():
        if isinstance(graphql_type, GraphQLScalarType) and name not in builtin:
            graphql_type.serialize = _identity
            graphql_type.parse_value = _identity
            graphql_type.parse_literal = _literal
    return schema


def _identity(value: Any) -> Any:
    return value


def _literal(node: Any) -> Any:
    return getattr(node, "value", None)


def validate_against_saleor(document: str) -> list[str]:
    from graphql import parse, validate

    return [str(e) for e in validate(saleor_schema(), parse(document))]
