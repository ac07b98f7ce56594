"""App mode HTTP endpoints: manifest, install handshake, webhooks.

Saleor treats 4xx as final and retries 5xx, so the webhook answers 401 only when the request
is not provably from the registered Saleor (nothing stored), and 200 for everything it has
stored, including deliveries it cannot read (kept as ``invalid`` for diagnosis).
"""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from saleor_crm_plugin.app import registry
from saleor_crm_plugin.app.jws import SignatureError
from saleor_crm_plugin.app.manifest import build_manifest
from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.saleor_api import normalize_api_url
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.exceptions import PayloadError, UnsupportedEvent
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.types import stable_hash

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
    signature = request.headers.get("Saleor-Signature", "")
    api_url = request.headers.get("Saleor-Api-Url", "")
    event_name = request.headers.get("Saleor-Event", "")
    if not signature:
        return _error("Missing Saleor-Signature header.", "SIGNATURE_MISSING", 401)
    if not api_url:
        return _error("Missing Saleor-Api-Url header.", "SIGNATURE_INVALID", 401)
    body = request.body
    try:
        registry.verify_webhook_signature(api_url, signature, body)
    except SignatureError as exc:
        logger.warning("Rejected webhook %s from %s: %s", event_name, api_url, exc)
        return _error(str(exc), "SIGNATURE_INVALID", 401)
    normalized_url = normalize_api_url(api_url)
    try:
        event = translate_webhook(event_name, body, normalized_url)
    except UnsupportedEvent as exc:
        return JsonResponse({"status": "ignored", "reason": str(exc)})
    except PayloadError as exc:
        logger.error("Unreadable %s payload from %s: %s", event_name, api_url, exc)
        inbox.store_invalid(
            dedupe_key=stable_hash("webhook", normalized_url, event_name.lower(), body),
            kind=event_name.lower()[:40],
            source="webhook",
            saleor_api_url=normalized_url,
            raw_body=body.decode("utf-8", errors="replace"),
            error=str(exc),
        )
        return JsonResponse({"status": "invalid", "reason": str(exc)})
    stored = inbox.store_event(event)
    return JsonResponse({"status": "accepted" if stored else "duplicate"})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
