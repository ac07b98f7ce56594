"""The App's WSGI handler: Django's, with its two hot requests skipping URL resolution.

``POST /api/webhooks/saleor`` is nearly every request the App serves, and Django spent about
a third of its handling on the generic pipeline around the view (docs/benchmarks.md);
``POST /graphql/`` is what storefronts and the dashboard send (resolving it, the last of the
App's URL patterns, took ~23 µs of a ~1.7 ms customer 360). Here such a request still goes
through everything Django's ``WSGIHandler`` does (script prefix,
``request_started`` / ``request_finished`` and so ``close_old_connections``, the request
object with its ``DATA_UPLOAD_MAX_MEMORY_SIZE`` limit, the configured middleware, built by
Django from ``settings.MIDDLEWARE``, with its exception-to-response wrapping: the
``ALLOWED_HOSTS`` 400, the security headers, ``Content-Length``, the 500 handling and the
``django.request`` log lines), only the view is called directly: the URL resolver, the view
middleware and the template-response step it does not need are skipped.

With the App's own middleware list and neither ``SECURE_SSL_REDIRECT`` nor ``PREPEND_WWW``
set (the usual case), those two POSTs go further: ``app/fastpath.py`` answers them at the WSGI
level, doing Django's steps inline (same order, same exception boundaries, same bytes) without
the middleware wrappers, and the acknowledgement's two stored answers come prepared; the
short path below then serves them only under those two settings.

That is equivalent only while no middleware has ``process_view``,
``process_template_response`` or ``process_exception`` hooks, or reads
``request.resolver_match`` before the view: so the short path is taken only when
``settings.MIDDLEWARE`` is exactly the App's own list (``APP_MIDDLEWARE``); with any other
list every request goes through Django's handler unchanged.

Every request, whichever chain it takes, runs holding the process's request gate
(``core/gate.py``, ``CRM_REQUEST_GATE``): the request threads take turns per request rather
than per SQL round trip, and a thread waiting on Saleor lets the next one in.

The access log (``CRM_ACCESS_LOG``, on under ``saleor-crm serve``) is written here, by the
request's own thread, which holds the GIL already. Granian's access log is a Python callback
that its Rust I/O thread makes after the response: one more GIL hand-over per request, which
cost ~0.08 ms of CPU per acknowledged webhook under load (14% of the web process's), where
this line costs ~0.01 ms. The time logged runs from the handler's start to the response
object being ready (the body is sent by the server afterwards).

A buffered response goes back to the server as a list of its body, already closed
(``_handed_over``), which granian sends in one piece instead of streaming it from an
iterator: fewer wake-ups between the request thread and granian's I/O thread per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, ResolverMatch, resolve

from saleor_crm_plugin.app import APP_MIDDLEWARE, fastpath, views
from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.core import gate
from saleor_crm_plugin.core.balance import Balancer

WEBHOOK_PATH = "/api/webhooks/saleor"
GRAPHQL_PATH = "/graphql/"

access_logger = logging.getLogger("saleor_crm_plugin.access")
logger = logging.getLogger(__name__)


def _handed_over(response: Any) -> Any:
    """What the server is given for Django's ``response``: a buffered ``HttpResponse`` as a
    list of its one body, closed here (``request_finished``, and so ``close_old_connections``,
    runs now, in this thread, before the server writes the body); anything else (streaming
    responses, a ``wsgi.file_wrapper``) as Django returns it, for the server to iterate and
    close.

    Granian sends a list with its status and headers in one message to its I/O thread
    (``response_bytes``); any other iterable it streams (``response_iter``): it hands over the
    headers first, waking the I/O thread, then each chunk through a channel, then calls
    ``close()``, so the request thread and the I/O thread wake each other several times per
    response. Measured on the customer 360 under granian 2 x 4: 13.0-13.6 context switches of
    the server per request at base, 9.4-11.7 with a list (1 client), 12.3-13.6 against
    10.8-11.3 (20 clients). gunicorn writes a list the way it wrote Django's response. The
    bytes, status and headers are Django's; a ``close()`` that raises is logged, as the servers
    did, and the answer still goes out (granian ignored such errors, gunicorn logged them after
    sending)."""
    if not isinstance(response, HttpResponse):
        return response
    body = [response.content]
    try:
        response.close()
    except Exception:  # the server's own guard, now ours: the answer is ready and correct
        logger.exception("Error closing the response to %s", response)
    return body


class _ResolvedChain(BaseHandler):
    """Django's middleware chain (built by ``load_middleware``, same wrapping) around one
    view, already resolved."""

    def __init__(self, match: ResolverMatch) -> None:
        super().__init__()
        self._match = match
        self._view = self.make_view_atomic(match.func)  # ``ATOMIC_REQUESTS`` as Django has it
        self.load_middleware()

    def _get_response(self, request: HttpRequest) -> HttpResponseBase:
        match = self._match
        request.resolver_match = match
        response = self._view(request, *match.args, **match.kwargs)
        self.check_response(response, match.func)
        return response


class AppWSGIHandler(WSGIHandler):
    """``WSGIHandler`` whose middleware chain sends the webhook's and GraphQL's POSTs to their
    ``_ResolvedChain`` (when the middleware list allows it) and every other request to
    Django's own chain."""

    _fast_webhook: fastpath.FastPost | None = None
    _fast_graphql: fastpath.FastPost | None = None

    def __init__(self) -> None:
        super().__init__()
        self._gated = crm_settings.REQUEST_GATE
        self._access: Callable[..., None] | None = (
            access_logger.info if crm_settings.ACCESS_LOG else None
        )
        self._balance = self._balancer()
        if tuple(settings.MIDDLEWARE) != APP_MIDDLEWARE:
            return
        django_chain: Callable[[HttpRequest], Any] = self._middleware_chain
        self._django_chain = django_chain
        if fastpath.usable():
            self._fast_webhook = self._inline(WEBHOOK_PATH)
            self._fast_graphql = self._inline(GRAPHQL_PATH)
            if self._fast_webhook is not None:
                self._webhook_chain = self._fast_webhook.chain
            if self._fast_graphql is not None:
                self._graphql_chain = self._fast_graphql.chain
            if self._fast_webhook is not None and self._fast_graphql is not None:
                return  # both answered inline; every other request is Django's
        self._webhook_chain = self._resolved(WEBHOOK_PATH) or django_chain
        self._graphql_chain = self._resolved(GRAPHQL_PATH) or django_chain
        self._fast_webhook = self._fast_graphql = None
        self._middleware_chain = self._dispatch

    def _inline(self, path: str) -> fastpath.FastPost | None:
        """The inline chain (``app/fastpath.py``) for the view at ``path``; the webhook's
        through :func:`views.acknowledge`, whose stored-delivery answers are prepared once."""
        try:
            match = resolve(path, urlconf=settings.ROOT_URLCONF)
        except Resolver404:  # a URLconf without that view
            return None
        if match.func is views.saleor_webhook:
            return fastpath.FastPost(
                self, match, views.acknowledge, views.STORED_ANSWERS, views._copy_of
            )
        return fastpath.FastPost(self, match, match.func)

    @staticmethod
    def _balancer() -> Balancer | None:
        """This worker's slot in the connection balance file ``saleor-crm serve`` made
        (``core/balance.py``), or ``None``: no file, or no slot to be had (the worker then
        serves unbalanced rather than not at all)."""
        path = crm_settings.CONNECTION_BALANCE_FILE
        if not path:
            return None
        try:
            return Balancer(
                path,
                crm_settings.CONNECTION_BALANCE_INTERVAL,
                by_connections=crm_settings.CONNECTION_BALANCE_COUNT == "connections",
            )
        except (OSError, RuntimeError):
            logger.warning("Serving without connection balance", exc_info=True)
            return None

    @staticmethod
    def _resolved(path: str) -> Callable[[HttpRequest], Any] | None:
        try:
            match = resolve(path, urlconf=settings.ROOT_URLCONF)
        except Resolver404:  # a URLconf without that view
            return None
        return _ResolvedChain(match)._middleware_chain  # type: ignore[no-any-return]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        access = self._access
        started = perf_counter() if access is not None else 0.0
        balance = self._balance
        if balance is not None:
            status, body = self._balanced_call(balance, environ, start_response)
        elif not self._gated or not gate.enter():
            status, body, _ = self._handle(environ, start_response)
        else:
            try:
                status, body, _ = self._handle(environ, start_response)
            finally:
                gate.leave()
        if access is not None:
            access(
                '%s - "%s %s%s %s" %s %.3f',
                environ.get("REMOTE_ADDR") or "-",
                environ.get("REQUEST_METHOD", "-"),
                environ.get("SCRIPT_NAME", ""),
                environ.get("PATH_INFO", ""),
                environ.get("SERVER_PROTOCOL", "-"),
                status,
                (perf_counter() - started) * 1000,
            )
        return body

    def _handle(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> tuple[Any, Any, bool]:
        """``(status code, what the server gets, whether the answer is buffered without a
        Connection header)``: the webhook's and GraphQL's POSTs through their inline chain
        (``app/fastpath.py``) when there is one, everything else through Django's handler."""
        if environ.get("REQUEST_METHOD", "").upper() == "POST":
            path = environ.get("PATH_INFO")
            if path == WEBHOOK_PATH and self._fast_webhook is not None:
                return self._fast_webhook(environ, start_response, self._webhook_chain)
            if path == GRAPHQL_PATH and self._fast_graphql is not None:
                return self._fast_graphql(environ, start_response, self._graphql_chain)
        response = super().__call__(environ, start_response)
        closable = isinstance(response, HttpResponse) and not response.has_header("Connection")
        return getattr(response, "status_code", "-"), _handed_over(response), closable

    def _balanced_call(
        self, balance: Balancer, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> tuple[Any, Any]:
        """The request counted in this worker's load while it is handled (``core/balance.py``);
        answered with ``Connection: close`` when the worker holds more than its share. Kept
        apart so that a server without balancing runs the same instructions as before."""
        try:
            if (
                balance.enter(environ.get("SERVER_PORT"))
                and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
            ):
                return self._closing_call(environ, start_response)
            status, body, _ = self._gated_call(environ, start_response)
            return status, body
        finally:
            balance.leave()

    def _gated_call(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> tuple[Any, Any, bool]:
        """:meth:`_handle`, inside the gate."""
        if not self._gated or not gate.enter():
            return self._handle(environ, start_response)
        try:
            return self._handle(environ, start_response)
        finally:
            gate.leave()

    def _closing_call(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> tuple[Any, Any]:
        """:meth:`_gated_call` whose answer, when it is buffered (an ``HttpResponse``, sent in
        one piece), tells the client to close the connection (``core/balance.py``): its next
        request comes on a new connection, which the kernel places afresh. A streamed answer
        goes out as Django made it."""
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def captured(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started.append((status, headers))

        status_code, body, closable = self._gated_call(environ, captured)
        status, headers = started[-1]
        if closable:
            headers = [*headers, ("Connection", "close")]
        start_response(status, headers)
        return status_code, body

    def _dispatch(self, request: HttpRequest) -> HttpResponseBase:
        if request.method == "POST":
            path = request.path_info
            if path == WEBHOOK_PATH:
                return self._webhook_chain(request)  # type: ignore[no-any-return]
            if path == GRAPHQL_PATH:
                return self._graphql_chain(request)  # type: ignore[no-any-return]
        return self._django_chain(request)  # type: ignore[no-any-return]
