"""App mode HTTP endpoints: manifest, install handshake, webhooks.

Saleor treats 4xx as final and retries 5xx, so the webhook answers 401 only when the request
is not provably from the registered Saleor (nothing stored), and 200 for everything it has
stored, including deliveries it cannot read (kept as ``invalid`` for diagnosis).

The webhook does not translate what it acknowledges. After the signature check it needs only
the event name (the ``Saleor-Event`` header: an event the CRM does not consume is answered
``ignored`` and not stored) and the dedupe key, a hash of the exact body; it stores the body
as Saleor sent it in one INSERT and answers ``accepted`` (or ``duplicate``). The worker
translates the row when it claims it, and a body it cannot read (not JSON, or not a shape we
know) becomes an ``invalid`` row with the error, as the ack used to record it: Saleor treats
every 2xx alike and would only resend the same bytes, so answering ``invalid`` at once bought
nothing but a third of the ack's CPU. The one exception is a body that cannot even be kept as
text (not UTF-8, or a NUL character, neither possible in JSON): it is stored ``invalid``
straight away and answered so.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from http.cookies import SimpleCookie
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import ResponseHeaders
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from saleor_crm_plugin.app import registry
from saleor_crm_plugin.app.jws import SignatureError
from saleor_crm_plugin.app.manifest import build_manifest
from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.exceptions import UnsupportedEvent
from saleor_crm_plugin.events.from_webhook import event_kind_from_header
from saleor_crm_plugin.events.types import EventKind

logger = logging.getLogger(__name__)


def _error(message: str, code: str, status: int) -> JsonResponse:
    # Saleor shows ``error.message`` to the operator when an installation fails.
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _base_url(request: HttpRequest) -> str:
    return crm_settings.APP_URL or request.build_absolute_uri("/").rstrip("/")


@require_GET
def manifest(request: HttpRequest) -> JsonResponse:
    return JsonResponse(build_manifest(_base_url(request)))


@csrf_exempt
@require_POST
def register(request: HttpRequest) -> JsonResponse:
    api_url = request.headers.get("Saleor-Api-Url", "")
    if not api_url:
        return _error("Missing Saleor-Api-Url header.", "REQUIRED", 400)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _error("Body must be JSON.", "INVALID", 400)
    token = body.get("auth_token") if isinstance(body, dict) else None
    try:
        registry.register(api_url, token or "", domain=request.headers.get("Saleor-Domain", ""))
    except registry.RegistrationError as exc:
        logger.warning("Refused app registration from %s: %s", api_url, exc)
        return _error(str(exc), exc.code, exc.status)
    return JsonResponse({"success": True})


@csrf_exempt
@require_POST
def saleor_webhook(request: HttpRequest) -> HttpResponse:
    """The acknowledgement as a Django view: :func:`acknowledge`, whose two stored-delivery
    answers are shared templates, handed out as copies."""
    response = acknowledge(request)
    if response is _ACCEPTED_RESPONSE or response is _DUPLICATE_RESPONSE:
        return _copy_of(response)
    return response


def acknowledge(request: HttpRequest) -> HttpResponse:
    """The acknowledgement of a POSTed delivery: a new response for a refusal, an ignored
    event or an unreadable body, and for a stored delivery one of ``STORED_ANSWERS``
    itself, a shared template that must not be changed. The App's WSGI handler
    (``app/handler.py``) answers those from status, headers and body it prepared once;
    :func:`saleor_webhook` copies them for Django's chain."""
    # ``request.META`` rather than ``request.headers``: the latter builds a case-insensitive
    # copy of every header on first use (about 3% of the acknowledgement's CPU) to read three.
    meta = request.META
    signature = meta.get("HTTP_SALEOR_SIGNATURE", "")
    api_url = meta.get("HTTP_SALEOR_API_URL", "")
    event_name = meta.get("HTTP_SALEOR_EVENT", "")
    if not signature:
        return _error("Missing Saleor-Signature header.", "SIGNATURE_MISSING", 401)
    if not api_url:
        return _error("Missing Saleor-Api-Url header.", "SIGNATURE_INVALID", 401)
    body = request.body
    try:
        instance = registry.verify_webhook_signature(api_url, signature, body)
    except SignatureError as exc:
        logger.warning("Rejected webhook %s from %s: %s", event_name, api_url, exc)
        return _error(str(exc), "SIGNATURE_INVALID", 401)
    try:
        kind = _event_kind(event_name)
    except UnsupportedEvent as exc:
        return JsonResponse({"status": "ignored", "reason": str(exc)})
    # The instance was found under the normalised header (an exact match), so its URL is
    # that normalisation, done once per request instead of twice.
    normalized_url = instance.saleor_api_url
    dedupe_key = _dedupe_key(normalized_url, kind, body)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        return _store_unreadable(kind, normalized_url, dedupe_key, body, f"Body is not JSON: {exc}")
    if "\x00" in text:
        return _store_unreadable(
            kind, normalized_url, dedupe_key, body, "Body is not JSON: it holds a NUL character."
        )
    stored = inbox.store_webhook(
        dedupe_key=dedupe_key, kind=kind.value, saleor_api_url=normalized_url, raw_body=text
    )
    return _ACCEPTED_RESPONSE if stored else _DUPLICATE_RESPONSE


# A Saleor sends a handful of event names, each spelled the same way every time: the enum
# lookup (``EventKind(...)``, in Python) is remembered per header. Only results are cached (an
# unsupported name raises again each time), and the cache is bounded: the header is the
# caller's choice.
_event_kind = functools.lru_cache(maxsize=64)(event_kind_from_header)


@functools.lru_cache(maxsize=64)
def _dedupe_prefix(api_url: str, kind: EventKind) -> Any:
    """SHA-256 after the parts of ``webhook_dedupe_key`` that come before the body, fed as
    ``stable_hash`` feeds them; never updated itself, only copied."""
    digest = hashlib.sha256()
    for part in ("webhook", api_url, kind.value):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest


def _dedupe_key(api_url: str, kind: EventKind, body: bytes) -> str:
    """``webhook_dedupe_key(api_url, kind, body)``, from the remembered hash of its prefix
    (one Saleor, a handful of kinds) instead of feeding the prefix again each time;
    ``tests/app/test_webhook_ack.py`` compares the two."""
    digest = _dedupe_prefix(api_url, kind).copy()
    digest.update(body)
    digest.update(b"\x00")
    return digest.hexdigest()


# The answers to a stored delivery, encoded once as ``JsonResponse`` encodes them (same bytes,
# same content type): running the JSON encoder per acknowledgement was 1% of its CPU.
_ACCEPTED = json.dumps({"status": "accepted"}, cls=DjangoJSONEncoder).encode()
_DUPLICATE = json.dumps({"status": "duplicate"}, cls=DjangoJSONEncoder).encode()
# ... and built once as ``HttpResponse`` objects, which the view copies (never hands out):
# ``HttpResponse.__init__`` checks and re-encodes the ``Content-Type`` header and the content
# on every call, ~2% of an acknowledgement's instructions, for the same two answers each time.
_ACCEPTED_RESPONSE = HttpResponse(_ACCEPTED, content_type="application/json")
_DUPLICATE_RESPONSE = HttpResponse(_DUPLICATE, content_type="application/json")
# What :func:`acknowledge` may answer as a shared template (never changed, only copied).
STORED_ANSWERS = (_ACCEPTED_RESPONSE, _DUPLICATE_RESPONSE)


def _copy_of(template: HttpResponse) -> HttpResponse:
    """A new response equal to ``template``, with its own copy of everything the middleware
    and the handler change (headers, cookies, closers, content list, ``closed``): the same
    attributes ``HttpResponse.__init__`` sets, with the values it would compute.
    ``tests/app/test_webhook_ack.py`` compares the copy with a freshly built response."""
    response = HttpResponse.__new__(HttpResponse)
    state = template.__dict__.copy()
    headers = ResponseHeaders.__new__(ResponseHeaders)
    headers._store = template.headers._store.copy()
    state["headers"] = headers
    state["cookies"] = SimpleCookie()
    state["_resource_closers"] = []
    state["_container"] = template._container.copy()
    response.__dict__ = state
    return response


def _store_unreadable(
    kind: EventKind, api_url: str, dedupe_key: str, body: bytes, error: str
) -> JsonResponse:
    """PostgreSQL text holds neither invalid UTF-8 nor NUL, and neither is JSON (which
    travels as UTF-8, RFC 8259, with control characters escaped), so such a body is kept
    lossily as ``invalid`` here rather than raw for the worker."""
    logger.error("Unreadable %s payload from %s: %s", kind.value, api_url, error)
    inbox.store_invalid(
        dedupe_key=dedupe_key,
        kind=kind.value,
        source="webhook",
        saleor_api_url=api_url,
        raw_body=body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
        error=error,
    )
    return JsonResponse({"status": "invalid", "reason": error})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
