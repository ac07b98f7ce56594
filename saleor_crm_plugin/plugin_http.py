"""HTTP requests Saleor routes to the plugin (``/plugins/global/<PLUGIN_ID>/<path>``)."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


def handle_plugin_request(request: Any, path: str, previous_value: Any) -> Any:
    if path.rstrip("/") in {"", "/healthz"}:
        return JsonResponse({"status": "ok"})
    return previous_value
