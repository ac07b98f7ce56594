"""HTTP requests Saleor routes to the plugin (``/plugins/global/<PLUGIN_ID>/<path>``)."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


def handle_plugin_request(request: Any, path: str, previous_value: Any) -> Any:
    if path.rstrip("/") in {"", "/healthz"}:
        return JsonResponse({"status": "ok"})
    if path.rstrip("/") == "/graphql":
        # POST only: Saleor's CORS preflight allows POST and OPTIONS, and its ASGI wrapper
        # answers OPTIONS itself. No GraphiQL here: the page would be public on the shop.
        from saleor_crm_plugin.graphql.views import execute_request

        if request.method != "POST":
            response = JsonResponse({"errors": [{"message": "Use POST."}]}, status=405)
            response["Allow"] = "POST"
            return response
        return execute_request(request)
    return previous_value
