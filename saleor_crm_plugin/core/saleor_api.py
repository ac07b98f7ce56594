"""Calls to Saleor's GraphQL API (app token), and the registry of every document we send.

Documents are declared with ``saleor_document`` so a contract test can validate each of them
against Saleor's real ``schema.graphql``: a renamed field breaks CI, not production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core import gate

DOCUMENTS: dict[str, str] = {}


def saleor_document(name: str, text: str) -> str:
    if DOCUMENTS.get(name, text) != text:
        raise ValueError(f"Two different Saleor documents named {name!r}.")
    DOCUMENTS[name] = text
    return text


class SaleorApiError(Exception):
    def __init__(self, message: str, *, status: int | None = None, errors: Any = None):
        super().__init__(message)
        self.status = status
        self.errors = errors


def normalize_api_url(url: str) -> str:
    """``HTTP://Host:8000/graphql/`` and ``http://host:8000/graphql/`` name the same instance."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"Not a Saleor API URL: {url!r}")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def jwks_url(api_url: str) -> str:
    parts = urlsplit(api_url)
    return urlunsplit((parts.scheme, parts.netloc, "/.well-known/jwks.json", "", ""))


@dataclass
class SaleorClient:
    api_url: str
    token: str = ""
    timeout: float | None = None
    session: requests.Session | None = None

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        http = self.session or requests
        try:
            with gate.released():
                response = http.post(
                    self.api_url,
                    data=json.dumps({"query": query, "variables": variables or {}}),
                    headers=headers,
                    timeout=self.timeout or crm_settings.HTTP_TIMEOUT,
                )
        except requests.RequestException as exc:
            raise SaleorApiError(f"Saleor API unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise SaleorApiError(
                f"Saleor API answered HTTP {response.status_code}.", status=response.status_code
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise SaleorApiError("Saleor API answered with something other than JSON.") from exc
        if body.get("errors"):
            message = "; ".join(str(e.get("message")) for e in body["errors"])
            raise SaleorApiError(f"Saleor API error: {message}", errors=body["errors"])
        return body.get("data") or {}


def fetch_jwks(api_url: str) -> dict[str, Any]:
    try:
        with gate.released():
            response = requests.get(jwks_url(api_url), timeout=crm_settings.HTTP_TIMEOUT)
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SaleorApiError(f"Could not fetch the JWKS of {api_url}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise SaleorApiError(f"The JWKS of {api_url} has no keys.")
    return data
