"""HTTP entry point of the GraphQL API, shared by App mode (``POST /graphql/``) and plugin mode
(``/plugins/global/<PLUGIN_ID>/graphql/``).

Status codes: 400 for requests that cannot be executed (bad JSON, syntax or validation errors,
limits), 401 for unacceptable credentials (so clients refresh their token), 503 when Saleor
could not be asked about an app token, 200 once the
document executed, errors included (GraphQL's convention, as Saleor). Unexpected exceptions are
logged and reported as "Internal Server Error" unless DEBUG is on.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from typing import Any

import orjson
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from graphql import parse, validate
from graphql.error import GraphQLError, GraphQLSyntaxError
from graphql.execution import execute
from graphql.language import ast

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core.auth import AuthenticationError, authenticate
from saleor_crm_plugin.core.errors import CrmError
from saleor_crm_plugin.core.lru import LRUCache
from saleor_crm_plugin.graphql.core.context import GraphQLContext
from saleor_crm_plugin.graphql.core.executor import DocumentPlans, Unsupported, execute_query
from saleor_crm_plugin.graphql.core.limits import limit_errors, measure
from saleor_crm_plugin.graphql.core.permissions import PermissionDenied

logger = logging.getLogger(__name__)

MAX_BATCH = 10
# Tests switch the lean executor off to compare its answers with graphql-core's.
FAST_EXECUTOR = {"enabled": True}


_Parsed = tuple[Any, list[GraphQLError], DocumentPlans | None]
# Parsed and validated documents (with their shared field plans) by schema and query text:
# parsing and validating cost far more than executing a small query, and clients send the
# same few documents over and over.
_documents: LRUCache[tuple[int, str], _Parsed] = LRUCache(256)
# Depth and cost by document and by the only variables that can change them (integers such
# as ``first``, list lengths such as ``representations``); the limits are read at every call.
_measures: LRUCache[tuple[str, tuple[Any, ...]], tuple[int, int]] = LRUCache(1024)


def parsed_document(schema: Any, query: str) -> _Parsed:
    key = (id(schema), query)
    entry = _documents.get(key)
    if entry is not None:
        return entry
    try:
        document = parse(query)
    except GraphQLSyntaxError as exc:
        return None, [exc], None
    errors = validate(schema, document)
    entry = (document, errors, None if errors else DocumentPlans(document))
    _documents.put(key, entry)
    return entry


def limit_errors_of(query: str, document: Any, variables: dict[str, Any]) -> list[GraphQLError]:
    # Most documents come without variables: their signature is the empty one.
    signature = (
        tuple(
            sorted(
                (name, len(value) if isinstance(value, list) else value)
                for name, value in variables.items()
                if isinstance(value, int | list)
            )
        )
        if variables
        else ()
    )
    measured = _measures.get((query, signature))
    if measured is None:
        measured = measure(document, variables)
        _measures.put((query, signature), measured)
    return limit_errors(*measured)


# ``JsonResponse(data, safe=False)`` builds a new DjangoJSONEncoder (with these very defaults)
# for every response; one instance serves every thread (``encode`` keeps no state).
_ENCODER = DjangoJSONEncoder()
# Datetimes go to ``_ENCODER.default`` (orjson's own format differs: Django cuts microseconds
# to milliseconds and writes UTC as ``Z``); Decimal, lazy strings and the like reach it anyway.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def _encode(data: Any) -> bytes:
    """The answer as JSON: orjson where it can (a customer 360 is ~17 kB of already-serialized
    leaves: the standard encoder and its ``ensure_ascii`` escaping were ~5% of the request's
    CPU, orjson a tenth of that), the standard encoder for what orjson refuses (an integer
    beyond 64 bits, a key that is not a string). The bytes differ only in spacing, in
    non-ASCII text sent as UTF-8 instead of ``\\u`` escapes (the content type is
    ``application/json``, UTF-8) and in a non-finite float, which orjson sends as ``null``
    where ``json`` wrote ``NaN`` or ``Infinity``, tokens no JSON parser but Python's accepts."""
    try:
        return orjson.dumps(data, default=_ENCODER.default, option=_ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        return _ENCODER.encode(data).encode()


# orjson reads an integer beyond 64 bits as a float (``json``: an exact ``int``); any float
# this large sends the body to ``json.loads``.
_INT64 = float(2**63)


def _outside_int64(payload: Any) -> bool:
    """Whether ``payload`` holds a float of magnitude 2**63 or more. Iterative: orjson nests
    up to 1,024 levels, more than Python's recursion allows."""
    stack = [payload]
    while stack:
        value = stack.pop()
        cls = value.__class__
        if cls is dict:
            value = value.values()
        elif cls is not list:
            if cls is float and not -_INT64 < value < _INT64:
                return True
            continue
        for item in value:
            cls = item.__class__
            if cls is float:
                if not -_INT64 < item < _INT64:
                    return True
            elif cls is dict or cls is list:
                stack.append(item)
    return False


def _decode(body: bytes) -> Any:
    """``json.loads(body)``: orjson parses the strict JSON clients send (UTF-8, RFC 8259) to
    the same values for a tenth of the instructions (~2 us for a customer 360's document).
    What it refuses and ``json`` may still accept (``NaN``, lone surrogate escapes, a
    byte-order mark, UTF-16 or UTF-32 bodies, deep nesting), and a body where it may have
    read an integer beyond 64 bits as a float, go to ``json.loads``, which answers or raises
    ``ValueError`` as before."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
    return json.loads(body) if _outside_int64(payload) else payload


def _json(data: Any, status: int = 200) -> HttpResponse:
    """What ``JsonResponse(data, status=status, safe=False)`` sends (same values, same
    ``Content-Type``), minus its per-response set-up and encoded by ``_encode``. The
    content type comes as a header: given as ``content_type``, ``HttpResponseBase`` first
    asks its empty headers for one, which raises and catches a ``KeyError`` in Python."""
    return HttpResponse(_encode(data), status=status, headers={"Content-Type": _JSON})


_JSON = "application/json"


class _MetaHeaders:
    """The request headers authentication reads, looked up in ``request.META`` as
    ``request.headers`` would find them (``Authorization-Bearer`` is
    ``HTTP_AUTHORIZATION_BEARER``). ``request.headers`` parses every header of the request
    into a new mapping on first use, to read two of them."""

    __slots__ = ("meta",)

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def get(self, name: str, default: Any = None) -> Any:
        return self.meta.get("HTTP_" + name.upper().replace("-", "_"), default)


def format_error(error: Exception) -> dict[str, Any]:
    """Saleor's error shape: ``message``, ``locations``, ``path`` and
    ``extensions.exception.code``."""
    original = getattr(error, "original_error", None) or error
    formatted: dict[str, Any] = {"message": str(error)}
    code = "GraphQLError"
    if isinstance(original, PermissionDenied):
        code = PermissionDenied.code
    elif isinstance(original, CrmError):
        formatted["message"] = original.message
        code = getattr(original.code, "value", original.code)
        if original.field:
            formatted["extensions"] = {"exception": {"code": code, "field": original.field}}
    elif not isinstance(original, GraphQLError):
        logger.error("GraphQL resolver failed", exc_info=original)
        code = "INTERNAL_ERROR"
        if not settings.DEBUG:
            formatted["message"] = "Internal Server Error"
    locations = getattr(error, "locations", None)
    if locations:
        formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in locations]
    path = getattr(error, "path", None)
    if path:
        formatted["path"] = path
    formatted.setdefault("extensions", {"exception": {"code": code}})
    return formatted


def _operation(document: Any, operation_name: str | None) -> Any:
    operations = [d for d in document.definitions if isinstance(d, ast.OperationDefinition)]
    if operation_name:
        return next((o for o in operations if o.name and o.name.value == operation_name), None)
    return operations[0] if len(operations) == 1 else None


def execute_operation(
    schema: Any, payload: Any, context: GraphQLContext
) -> tuple[int, dict[str, Any]]:
    if not isinstance(payload, dict):
        return 400, {"errors": [{"message": "Each operation must be a JSON object."}]}
    query = payload.get("query")
    variables = payload.get("variables") or {}
    operation_name = payload.get("operationName") or None
    if not isinstance(query, str) or not query.strip():
        return 400, {"errors": [{"message": "Must provide a query string."}]}
    if not isinstance(variables, dict):
        return 400, {"errors": [{"message": "Variables must be a JSON object."}]}
    document, errors, plans = parsed_document(schema, query)
    if not errors:
        errors = limit_errors_of(query, document, variables)
    if errors:
        return 400, {"errors": [format_error(e) for e in errors]}
    operation = _operation(document, operation_name)
    if (
        operation is not None
        and operation.operation != "query"
        and operation.operation != "mutation"
    ):
        return 400, {"errors": [{"message": "Subscriptions are not supported."}]}
    if operation is not None and operation.operation == "query" and FAST_EXECUTOR["enabled"]:
        if plans is not None:
            text = _rendered(schema, document, plans, operation_name, context, variables)
            if text is not None:
                # PostgreSQL's text of ``data``, sent as it came (orjson copies it in).
                return 200, {"data": orjson.Fragment(text)}
        try:
            return 200, {
                "data": execute_query(schema, document, context, variables, operation_name, plans)
            }
        except Unsupported:
            # Errors are graphql-core's to report; start again from an empty context so
            # no half-resolved loader state leaks into the second run.
            context.release()
    try:
        result = execute(
            schema,
            document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
        )
    except GraphQLError as exc:
        # graphql-core 2 raises (instead of reporting) a variable its type refuses: a client
        # error, answered like Saleor does, not a 500.
        return 400, {"errors": [format_error(exc)]}
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    return (400 if result.invalid else 200), body


def _rendered(
    schema: Any,
    document: Any,
    plans: DocumentPlans,
    operation_name: str | None,
    context: GraphQLContext,
    variables: dict[str, Any],
) -> str | None:
    """``data`` as JSON text rendered by one statement (``sql_render``: the customer 360),
    or ``None`` when the executors answer. The statement is compiled once per document and
    operation, kept in its ``DocumentPlans``."""
    sql_render = _SQL_RENDER[0] if _SQL_RENDER else _sql_render()
    if not sql_render.SQL_RENDER["enabled"]:
        return None
    compiled = plans.sql.get(operation_name, _UNCOMPILED)
    if compiled is _UNCOMPILED:
        compiled = plans.sql[operation_name] = sql_render.compile_operation(
            schema, document, operation_name
        )
    if compiled is None:
        return None
    return sql_render.render(compiled, context.requester, variables)


_UNCOMPILED = object()


def _sql_render() -> Any:
    """``sql_render``, imported at the first request (it reads the models' tables), then
    kept, as ``_api_schema`` keeps the schema."""
    from saleor_crm_plugin.graphql.customers import sql_render

    _SQL_RENDER.append(sql_render)
    return sql_render


_SQL_RENDER: list[Any] = []


def _api_schema() -> Any:
    """The CRM schema, imported at the first request (``api`` imports every domain's
    types) and then kept: a function-level import costs an import-lock round per call."""
    from saleor_crm_plugin.graphql.api import schema

    _SCHEMA.append(schema)
    return schema


_SCHEMA: list[Any] = []


def execute_request(request: HttpRequest) -> HttpResponse:
    """Run the request body (one operation or a batch) against the CRM schema."""
    schema = _SCHEMA[0] if _SCHEMA else _api_schema()
    try:
        payload = _decode(request.body or b"null")
    except ValueError:
        return _json({"errors": [{"message": "The request body must be JSON."}]}, 400)
    try:
        requester = authenticate(_MetaHeaders(request.META))
    except AuthenticationError as exc:
        error = {"message": exc.message, "extensions": {"exception": {"code": exc.code}}}
        return _json({"errors": [error]}, exc.status)
    context = GraphQLContext(request=request, requester=requester)
    if isinstance(payload, list):
        if not payload or len(payload) > MAX_BATCH:
            message = f"A batch must hold 1 to {MAX_BATCH} operations."
            return _json({"errors": [{"message": message}]}, 400)
        results = []
        for item in payload:
            # Dataloaders are per operation: a mutation must not be answered from a stale cache.
            context = GraphQLContext(request=request, requester=requester)
            try:
                results.append(execute_operation(schema, item, context)[1])
            finally:
                context.release()
        return _json(results)
    try:
        status, body = execute_operation(schema, payload, context)
    finally:
        context.release()
    return _json(body, status)


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.META.get("HTTP_ORIGIN")  # request.headers["Origin"], without parsing all
    if origin and any(fnmatch.fnmatchcase(origin, p) for p in crm_settings.GRAPHQL_ALLOWED_ORIGINS):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = (
            "Authorization, Authorization-Bearer, Content-Type, Saleor-Api-Url"
        )
        response["Access-Control-Max-Age"] = "86400"
        response["Vary"] = "Origin"
    return response


GRAPHIQL = """<!doctype html><html><head><title>Saleor CRM GraphiQL</title>
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css"></head>
<body style="margin:0"><div id="graphiql" style="height:100vh"></div>
<script src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
<script src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
<script src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
<script>ReactDOM.createRoot(document.getElementById('graphiql')).render(
React.createElement(GraphiQL,{fetcher:GraphiQL.createFetcher({url:location.pathname})}));</script>
</body></html>"""


@csrf_exempt
def graphql_view(request: HttpRequest) -> HttpResponse:
    """App mode ``/graphql/``: POST executes; OPTIONS answers CORS preflights; GET serves
    GraphiQL when DEBUG is on (never in production: it loads scripts from a CDN)."""
    if request.method == "OPTIONS":
        return _cors(request, HttpResponse(status=200))
    if request.method == "GET" and settings.DEBUG:
        return HttpResponse(GRAPHIQL)
    if request.method != "POST":
        response = _json({"errors": [{"message": "Use POST."}]}, 405)
        response["Allow"] = "POST, OPTIONS"
        return response
    return _cors(request, execute_request(request))
