"""The App's two hot POSTs answered at the WSGI level, as Django's chain answers them.

``POST /api/webhooks/saleor`` (nearly every request the App serves) and ``POST /graphql/``
went through Django's whole ``WSGIHandler``: the middleware chain of
``SecurityMiddleware`` and ``CommonMiddleware``, each wrapped by
``convert_exception_to_response`` and called through ``MiddlewareMixin.__call__``, the
security headers set one by one into the response's case-insensitive headers and read back
as a list, and, for the acknowledgement, a copy of one of its two prepared answers built and
closed per delivery. :class:`FastPost` does the same steps for one resolved view inline, in
the same order and with the same exception boundaries:

- ``set_script_prefix``, ``request_started`` (``close_old_connections``, ``reset_queries``),
  the ``WSGIRequest`` with its ``DATA_UPLOAD_MAX_MEMORY_SIZE`` limit, ``set_urlconf``;
- ``CommonMiddleware.process_request``'s checks (``DISALLOWED_USER_AGENTS``: 403;
  ``request.get_host()`` and so ``ALLOWED_HOSTS``: 400 as Django's ``DisallowedHost``
  handling), the view under ``ATOMIC_REQUESTS`` as ``make_view_atomic`` makes it, an
  exception turned into Django's answer by ``response_for_exception`` (its 500 page, its
  ``django.request`` log line) at the boundary where Django's wrappers turn it;
- ``CommonMiddleware.process_response``'s ``Content-Length`` and ``SecurityMiddleware``'s
  headers, appended to the header list in Django's order when the response lacks them, with
  the values the middleware itself produced at start-up (``prepared_security_headers``);
  a 404 goes through the real ``CommonMiddleware.process_response`` (its slash redirect);
- ``log_response`` for a status of 400 or more, the status line and headers to
  ``start_response``, then the close as ``HttpResponse.close`` does it (the request's
  files, ``closed``, ``request_finished`` sent by the handler's class), before the server
  gets the body as a one-item list (``app/handler.py``'s ``_handed_over``).

The acknowledgement's two stored-delivery answers (``views.STORED_ANSWERS``) are not
copied at all: their status line, header list and body are prepared once per
"secure or not" from a copy run through the same steps.

Only taken when it can be equivalent (decided once, at start-up, by
``AppWSGIHandler``): the middleware is exactly the App's list, and neither
``SECURE_SSL_REDIRECT`` nor ``PREPEND_WWW`` is set (both would answer with redirects from
``process_request``); otherwise those requests go through Django's chain.
``tests/app/test_wsgi_fast_path.py`` compares both on generated requests byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import PermissionDenied
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import ResolverMatch, set_script_prefix, set_urlconf
from django.utils.log import log_response

logger = logging.getLogger("saleor_crm_plugin.app.handler")

STS = "Strict-Transport-Security"
Headers = list[tuple[str, str]]


def usable() -> bool:
    """Whether the settings allow the inline chain to answer as Django's would (read once,
    when the handler is built, as Django builds its middleware once)."""
    return not settings.SECURE_SSL_REDIRECT and not settings.PREPEND_WWW


class _SecureProbe(HttpRequest):
    """A request that says it is secure, so that ``SecurityMiddleware`` shows every header
    it may add (``Strict-Transport-Security`` only goes to secure requests)."""

    def is_secure(self) -> bool:
        return True


def prepared_security_headers() -> list[tuple[str, str, bool]]:
    """``(name, value, secure requests only)`` for each header ``SecurityMiddleware`` adds
    to a response that has none of them, in the order it adds them, as it encodes them: its
    own ``process_response`` run on an empty response, with the current settings."""
    middleware = SecurityMiddleware(_never_called)
    probe = HttpResponse()
    before = {name.lower() for name, _ in probe.items()}
    middleware.process_response(_SecureProbe(), probe)
    return [
        (name, value, name.lower() == STS.lower())
        for name, value in probe.items()
        if name.lower() not in before
    ]


def _never_called(request: HttpRequest) -> HttpResponseBase:  # pragma: no cover
    raise AssertionError("the inline chain calls the middleware's hooks, not the chain")


def _plain(response: Any) -> bool:
    """A buffered ``HttpResponse`` whose ``close()`` is ``HttpResponseBase``'s: Django adds
    resource closers only to streaming and file responses, so closing it is closing the
    request, marking it closed and sending ``request_finished``, which the fast path does
    itself (without the private attributes Django's handler sets for that)."""
    return isinstance(response, HttpResponse) and type(response).close is HttpResponseBase.close


def _log_error(request: HttpRequest, response: HttpResponseBase) -> None:
    """``get_response``'s ``django.request`` line for an answer of 400 or more."""
    log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)


# ``settings._wrapped`` read in C, as ``conf.py`` reads it: ``LazySettings.__getattribute__``
# is a Python method.
_raw_attribute = object.__getattribute__
# ``Host`` headers that ``request.get_host()`` accepted under the settings object in
# ``_hosts_checked_under`` (the dict's insertion order is irrelevant: a membership set).
_accepted_hosts: dict[str, None] = {}
_hosts_checked_under: list[Any] = [None]
_ACCEPTED_HOSTS_MAX = 64


def _check_host(request: HttpRequest) -> None:
    """``request.get_host()`` (``ALLOWED_HOSTS``, the ``DisallowedHost`` it raises), whose
    answer for a request with a ``Host`` header and no ``X-Forwarded-Host`` depends only on
    that header and the settings (``ALLOWED_HOSTS``, ``DEBUG``; ``USE_X_FORWARDED_HOST``
    reads a header the request lacks): a header it accepted is remembered with the settings
    object it read and accepted again without the split, regex and allow-list loop (~45k
    instructions, 3% of an acknowledgement; a sender uses one or two ``Host`` values).
    Refusals are not remembered (they raise and log each time, as before), the memory is
    bounded (with ``ALLOWED_HOSTS = ["*"]`` any header is accepted) and forgotten when the
    settings object changes or on ``setting_changed``."""
    meta = request.META
    host = meta.get("HTTP_HOST")
    if host is None or "HTTP_X_FORWARDED_HOST" in meta:
        request.get_host()
        return
    wrapped = _raw_attribute(settings, "_wrapped")
    if host in _accepted_hosts and _hosts_checked_under[0] is wrapped:
        return
    request.get_host()
    if _hosts_checked_under[0] is not wrapped or len(_accepted_hosts) >= _ACCEPTED_HOSTS_MAX:
        _accepted_hosts.clear()
        _hosts_checked_under[0] = wrapped
    _accepted_hosts[host] = None


def _forget_hosts(**kwargs: Any) -> None:
    _accepted_hosts.clear()
    _hosts_checked_under[0] = None


setting_changed.connect(_forget_hosts)


class FastPost:
    """One resolved view's POSTs through the inline chain (module docstring)."""

    def __init__(
        self,
        handler: BaseHandler,
        match: ResolverMatch,
        view: Callable[[HttpRequest], HttpResponseBase],
        templates: Sequence[HttpResponse] = (),
        copy: Callable[[HttpResponse], HttpResponse] | None = None,
    ) -> None:
        self._handler_class = type(handler)
        self._request_class: type[WSGIRequest] = handler.request_class  # type: ignore[attr-defined]
        self._check_response = handler.check_response
        self._match = match
        self._callback = match.func
        self._view = handler.make_view_atomic(view)  # ``ATOMIC_REQUESTS`` as Django has it
        self._common = CommonMiddleware(_never_called)
        self._security_middleware = SecurityMiddleware(_never_called)
        security = prepared_security_headers()
        self._sts = [(name, value) for name, value, secure in security if secure]
        self._security = [(name, value) for name, value, secure in security if not secure]
        self._secure_matters = bool(self._sts)
        # Prepared answers: template -> {secure: (status line, headers, body, repr)}.
        self._answers: dict[int, dict[bool, tuple[str, Headers, bytes, str]]] = {}
        for template in templates:
            assert copy is not None
            prepared = {}
            for secure in (False, True):
                response = copy(template)
                headers = self._headers(response, secure, common=True)
                status = f"{response.status_code} {response.reason_phrase}"
                prepared[secure] = (status, headers, response.content, repr(response))
            self._answers[id(template)] = prepared
        self._templates = {id(t): t for t in templates}

    def _headers(self, response: HttpResponse, secure: bool, *, common: bool) -> Headers:
        """The header list Django's ``WSGIHandler`` passes to ``start_response`` after
        ``CommonMiddleware`` (when ``common``: it did not raise) and ``SecurityMiddleware``
        processed ``response``: its own headers, then each middleware header it lacks, then
        its cookies."""
        headers = list(response.items())
        has = response.has_header
        if common and not has("Content-Length"):
            headers.append(("Content-Length", str(len(response.content))))
        if secure:
            headers.extend(item for item in self._sts if not has(item[0]))
        headers.extend(item for item in self._security if not has(item[0]))
        cookies = response.cookies
        if cookies:
            headers.extend(("Set-Cookie", c.output(header="")) for c in cookies.values())
        return headers

    def _view_response(self, request: HttpRequest) -> HttpResponseBase:
        """``_get_response`` and the innermost ``convert_exception_to_response``."""
        try:
            request.resolver_match = self._match
            response = self._view(request)
            if id(response) not in self._templates:
                self._check_response(response, self._callback)
        except Exception as exc:
            return response_for_exception(request, exc)  # type: ignore[no-any-return]
        return response

    def chain(self, request: HttpRequest) -> tuple[HttpResponseBase, bool]:
        """``CommonMiddleware`` around the view, inside its ``convert_exception_to_response``:
        ``(response, True)`` when the response is plain and neither its ``Content-Length``
        nor the security headers are applied yet (the inline header list does both);
        ``(response, False)`` when the real hook already ran or an exception was turned into
        a response at this boundary (``SecurityMiddleware`` itself then follows)."""
        try:
            user_agent = request.META.get("HTTP_USER_AGENT")
            if user_agent is not None:
                for user_agent_regex in _raw_attribute(settings, "_wrapped").DISALLOWED_USER_AGENTS:
                    if user_agent_regex.search(user_agent):
                        raise PermissionDenied("Forbidden user agent")
            _check_host(request)  # ``ALLOWED_HOSTS``: ``DisallowedHost`` answers 400
            response = self._view_response(request)
            if response.status_code == 404 or not _plain(response):
                # Its slash redirect, or a response the header list is not prepared for:
                # the middleware itself, its Content-Length included.
                return self._common.process_response(request, response), False
        except Exception as exc:
            return response_for_exception(request, exc), False
        return response, True

    def __call__(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        chain: Callable[[HttpRequest], tuple[HttpResponseBase, bool]],
    ) -> tuple[Any, Any, bool]:
        """Answer the request, ``chain`` being :meth:`chain` (the handler passes it as its
        ``_webhook_chain`` / ``_graphql_chain``, which tests count): ``(status code, body for
        the server, whether the answer is buffered and has no Connection header)``."""
        set_script_prefix(get_script_name(environ))
        signals.request_started.send(sender=self._handler_class, environ=environ)
        request = self._request_class(environ)
        set_urlconf(_raw_attribute(settings, "_wrapped").ROOT_URLCONF)
        response, common = chain(request)
        prepared = self._answers.get(id(response))
        if prepared is not None:
            try:
                secure = request.is_secure() if self._secure_matters else False
            except Exception as exc:  # SecurityMiddleware's boundary
                return self._slow(request, response_for_exception(request, exc), start_response)
            status, headers, body, described = prepared[secure]
            start_response(status, list(headers))
            self._close(request, None, described)
            return 200, [body], True
        if not _plain(response) or not common:
            return self._slow(request, response, start_response, security=True)
        try:
            secure = request.is_secure() if self._secure_matters else False
        except Exception as exc:  # SecurityMiddleware's boundary
            return self._slow(request, response_for_exception(request, exc), start_response)
        headers = self._headers(response, secure, common=True)
        return self._finish(request, response, headers, start_response)

    def _slow(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        start_response: Callable[..., Any],
        *,
        security: bool = False,
    ) -> tuple[Any, Any, bool]:
        """The rare answers (an exception at a middleware's boundary, a 404, a response that
        is not a plain ``HttpResponse``): ``SecurityMiddleware.process_response`` itself
        (when ``security``), then what ``WSGIHandler`` does with the result."""
        if security:
            try:
                response = self._security_middleware.process_response(request, response)
            except Exception as exc:
                response = response_for_exception(request, exc)
        headers = [
            *response.items(),
            *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
        ]
        if not _plain(response):
            return self._streamed(request, response, headers, start_response)
        return self._finish(request, response, headers, start_response)

    def _streamed(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        headers: Headers,
        start_response: Callable[..., Any],
    ) -> tuple[Any, Any, bool]:
        """A response with closers of its own (streaming, a file, an overridden ``close``),
        which neither view gives today: handed over as the handler hands Django's over
        (``_handed_over``: buffered as a closed one-item list, streamed as itself), set up
        as ``get_response`` and ``WSGIHandler.__call__`` set it up (the request's close
        among its closers, ``request_finished`` sent by the handler's class). Django has no
        public way to do either, hence its two attributes here, on a path no request takes
        unless a view changes."""
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            _log_error(request, response)
        response._handler_class = self._handler_class
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        if not isinstance(response, HttpResponse):  # streamed: the server iterates, closes
            return response.status_code, response, False
        # buffered, with a close() of its own: as the handler's ``_handed_over`` hands it over
        closable = not response.has_header("Connection")
        body = [response.content]
        try:
            response.close()
        except Exception:
            logger.exception("Error closing the response to %s", response)
        return response.status_code, body, closable

    def _finish(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        headers: Headers,
        start_response: Callable[..., Any],
    ) -> tuple[Any, Any, bool]:
        """``get_response``'s log line, ``start_response``, the body, the close."""
        status_code = response.status_code
        if status_code >= 400:
            _log_error(request, response)
        start_response(f"{status_code} {response.reason_phrase}", headers)
        body = [response.content]  # type: ignore[attr-defined]
        self._close(request, response, None)
        closable = not response.has_header("Connection")
        return status_code, body, closable

    def _close(
        self, request: HttpRequest, response: HttpResponseBase | None, described: str | None
    ) -> None:
        """``HttpResponse.close()`` for a plain response: its only closer is the request's
        (appended by ``get_response``), then ``closed``, then ``request_finished``; an
        exception from a receiver is logged as ``_handed_over`` logs it, and the answer
        still goes out."""
        try:  # noqa: SIM105 (``suppress()`` costs a context manager per request)
            request.close()
        except Exception:  # ``close()`` ignores its closers' errors
            pass
        if response is not None:
            response.closed = True
        try:
            signals.request_finished.send(sender=self._handler_class)
        except Exception:
            logger.exception(
                "Error closing the response to %s", described if response is None else response
            )
