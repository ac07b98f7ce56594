"""The lean acknowledgement path keeps every check: only a detached RS256 signature over the
exact body, from the registered Saleor's key, gets a delivery stored; duplicates answer 200 and
are stored once; the server-bound insert behaves like the ORM would."""

import base64
import hashlib
import hmac
import json
import os

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import DataError, transaction

from saleor_crm_plugin.app import jws, views
from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.demo.signing import DemoSigner
from saleor_crm_plugin.events import inbox
from saleor_crm_plugin.events.from_webhook import translate_webhook
from saleor_crm_plugin.events.models import InboxEvent, InboxStatus
from tests.captures import CAPTURED_API_URL, load_capture

REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BODY = load_capture("ORDER_CREATED", "subscription").raw_body


@pytest.fixture(scope="module")
def signer() -> DemoSigner:
    return DemoSigner.generate()


@pytest.fixture
def registered(db, signer) -> SaleorInstance:
    return SaleorInstance.objects.create(saleor_api_url=CAPTURED_API_URL, jwks=signer.jwks)


def post(client, body: bytes, signature: str, event: str = "ORDER_CREATED"):
    return client.post(
        "/api/webhooks/saleor",
        data=body,
        content_type="application/json",
        headers={
            "Saleor-Event": event,
            "Saleor-Api-Url": CAPTURED_API_URL,
            "Saleor-Signature": signature,
        },
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_raw(signer: DemoSigner, header: dict, payload_segment: str, signed_payload: bytes) -> str:
    """A compact JWS with any header, signed for real with the registered key."""
    protected = b64(json.dumps(header).encode())
    signature = signer.private_key.sign(
        protected.encode() + b"." + signed_payload, padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{protected}.{payload_segment}.{b64(signature)}"


def test_genuine_detached_signature_is_accepted(registered, signer, client):
    response = post(client, BODY, signer.sign(BODY))

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert InboxEvent.objects.count() == 1


def test_a_saleor_issued_jwt_cannot_vouch_for_a_forged_body(registered, signer, client):
    # Saleor signs its access tokens with the same key and kid as its webhooks. A generic JWS
    # decoder verifies such a token against its own embedded payload and ignores the body.
    token = jwt.encode(
        {"sub": "customer", "token": "access"},
        signer.private_key,
        algorithm="RS256",
        headers={"kid": signer.kid},
    )

    response = post(client, BODY, token)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "SIGNATURE_INVALID"
    assert InboxEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("header", "payload_segment", "signed"),
    [
        # b64 omitted: a detached JWS over base64url(body), not the raw-body form Saleor uses
        ({"alg": "RS256", "kid": "demo-saleor-key"}, "", b64(BODY).encode()),
        # b64 false but not declared critical (RFC 7797 requires it)
        ({"alg": "RS256", "kid": "demo-saleor-key", "b64": False}, "", BODY),
        # a critical parameter we do not understand
        (
            {"alg": "RS256", "kid": "demo-saleor-key", "b64": False, "crit": ["b64", "exp"]},
            "",
            BODY,
        ),
        # an attached payload segment next to b64 false
        (
            {"alg": "RS256", "kid": "demo-saleor-key", "b64": False, "crit": ["b64"]},
            b64(b"{}"),
            BODY,
        ),
        # another algorithm
        (
            {"alg": "RS512", "kid": "demo-saleor-key", "b64": False, "crit": ["b64"]},
            "",
            BODY,
        ),
    ],
    ids=["b64-omitted", "b64-not-critical", "unknown-crit", "payload-segment", "rs512"],
)
def test_signatures_not_in_saleors_form_are_rejected(
    registered, signer, client, header, payload_segment, signed
):
    response = post(client, BODY, sign_raw(signer, header, payload_segment, signed))

    assert response.status_code == 401
    assert InboxEvent.objects.count() == 0


def test_the_raw_body_form_built_by_hand_matches_saleors(registered, signer, client):
    header = {"alg": "RS256", "kid": signer.kid, "b64": False, "crit": ["b64"]}

    assert post(client, BODY, sign_raw(signer, header, "", BODY)).status_code == 200


def test_alg_none_and_hmac_with_the_public_key_are_rejected(registered, signer, client):
    none = f"{b64(json.dumps({'alg': 'none', 'kid': signer.kid}).encode())}.."
    public_pem = jws.keys_from_jwks(signer.jwks)[signer.kid].public_bytes(
        encoding=Encoding.PEM, format=PublicFormat.SubjectPublicKeyInfo
    )
    hmac_header = b64(
        json.dumps({"alg": "HS256", "kid": signer.kid, "b64": False, "crit": ["b64"]}).encode()
    )
    mac = hmac.new(public_pem, hmac_header.encode() + b"." + BODY, hashlib.sha256).digest()

    for signature in (none, f"{hmac_header}..{b64(mac)}", "a.b", "é..x", ""):
        response = post(client, BODY, signature)
        assert response.status_code == 401, signature
    assert InboxEvent.objects.count() == 0


def test_parse_signature_reads_kid_and_protected_header_once(signer):
    parsed = jws.parse_signature(signer.sign(BODY))

    assert parsed.kid == signer.kid
    jws.verify_detached(parsed, BODY, jws.keys_from_jwks(signer.jwks)[signer.kid])
    with pytest.raises(jws.SignatureError):
        jws.verify_detached(parsed, BODY + b" ", jws.keys_from_jwks(signer.jwks)[signer.kid])


def _reference_parse(signature: str) -> str:
    """The uncached parser ``parse_signature`` replaced: its kid, or its error message."""
    try:
        token = signature.encode("ascii")
    except UnicodeEncodeError:
        return "Malformed signature: not ASCII."
    parts = token.split(b".")
    if len(parts) != 3:
        return "Malformed signature: not a compact JWS."
    protected, payload_segment, signature_segment = parts
    if payload_segment:
        return "Signature must have a detached payload."
    try:
        header = json.loads(jwt.utils.base64url_decode(protected))
        jwt.utils.base64url_decode(signature_segment)
    except (ValueError, TypeError) as exc:
        return f"Malformed signature: {exc}"
    if not isinstance(header, dict):
        return "Malformed signature: the header is not a JSON object."
    if header.get("alg") != "RS256":
        return "Only RS256 signatures are accepted."
    crit = header.get("crit")
    if header.get("b64") is not False or not isinstance(crit, list) or "b64" not in crit:
        return 'Signature must sign the raw body ("b64": false, critical).'
    if not all(isinstance(name, str) and name in {"b64"} for name in crit):
        return f"Unsupported critical header parameters: {crit!r}."
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        return "Signature has no key id."
    return kid


def _b64json(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_cached_header_parsing_answers_as_the_uncached_parser_did(signer):
    good = signer.sign(BODY)
    protected, _, sig = good.split(".")
    ok = {"alg": "RS256", "b64": False, "crit": ["b64"], "kid": "k1"}
    headers = [
        protected,
        _b64json(ok),
        _b64json({**ok, "alg": "HS256"}),
        _b64json({**ok, "b64": True}),
        _b64json({**ok, "crit": ["b64", "exp"]}),
        _b64json({**ok, "crit": ["b64", 1]}),
        _b64json({**ok, "kid": ""}),
        _b64json({k: v for k, v in ok.items() if k != "kid"}),
        _b64json([1, 2]),
        "bm90IGpzb24",  # "not json"
        "%%%",
        "",
    ]
    signatures = [sig, "%%%", "", "YQ", "a"]  # "a": not decodable (1 mod 4 characters)
    cases = [f"{h}..{s}" for h in headers for s in signatures]
    cases += ["", "a.b", "é..x", f"{protected}.payload.{sig}", "a.b.c.d"]
    jws._read_protected.cache_clear()
    for _ in range(2):  # the second pass answers from the cache
        for case in cases:
            expected = _reference_parse(case)
            try:
                got = jws.parse_signature(case).kid
            except jws.SignatureError as exc:
                got = str(exc)
            assert got == expected, case
    assert jws._read_protected.cache_info().hits >= len(headers) * len(signatures)


def test_oversized_protected_header_is_checked_but_not_cached(signer):
    ok = {"alg": "RS256", "b64": False, "crit": ["b64"], "kid": "k" * 600}
    protected = _b64json(ok)
    jws._read_protected.cache_clear()

    assert jws.parse_signature(f"{protected}..YQ").kid == "k" * 600
    assert jws._read_protected.cache_info().currsize == 0
    with pytest.raises(jws.SignatureError, match="Only RS256"):
        jws.parse_signature(f"{_b64json({**ok, 'alg': 'none'})}..YQ")


def test_stored_delivery_answers_the_bytes_json_response_did(registered, signer, client):
    from django.http import JsonResponse

    for status in ("accepted", "duplicate"):
        response = post(client, BODY, signer.sign(BODY))
        reference = JsonResponse({"status": status})
        assert response.status_code == 200
        assert response.content == reference.content
        assert response["Content-Type"] == reference["Content-Type"]


def _state(response) -> dict:
    """Everything an ``HttpResponse`` holds, with headers and cookies as plain values."""
    state = dict(vars(response))
    state["headers"] = dict(response.headers._store)
    state["cookies"] = {name: morsel.OutputString() for name, morsel in response.cookies.items()}
    return state


@pytest.mark.parametrize("body", [views._ACCEPTED, views._DUPLICATE])
def test_copied_answer_is_the_response_init_would_build(body):
    """The view copies a prebuilt answer: attribute for attribute (and byte for byte on the
    wire) what ``HttpResponse(body, content_type=...)`` builds, sharing nothing mutable with
    the template, so the middleware changing one answer changes no other."""
    from django.http import HttpResponse

    template = views._ACCEPTED_RESPONSE if body == views._ACCEPTED else views._DUPLICATE_RESPONSE

    def fresh() -> HttpResponse:
        return HttpResponse(body, content_type="application/json")

    copy = views._copy_of(template)
    assert type(copy) is HttpResponse
    assert _state(copy) == _state(fresh())
    assert copy.serialize() == fresh().serialize()

    copy["X-Frame-Options"] = "DENY"
    copy.set_cookie("seen", "1")
    copy.write(b" more")
    copy._resource_closers.append(lambda: None)
    copy._handler_class = object
    copy.close()
    for other in (template, views._copy_of(template)):
        assert _state(other) == _state(fresh())
    assert copy.headers is not template.headers and copy.cookies is not template.cookies


def test_delivery_is_stored_under_the_normalised_api_url(registered, signer, client):
    shouting = (
        CAPTURED_API_URL.replace("http://", "HTTP://").upper().replace("/GRAPHQL/", "/graphql/")
    )
    assert shouting != CAPTURED_API_URL
    response = client.post(
        "/api/webhooks/saleor",
        data=BODY,
        content_type="application/json",
        headers={
            "Saleor-Event": "ORDER_CREATED",
            "Saleor-Api-Url": f"  {shouting}",
            "Saleor-Signature": signer.sign(BODY),
        },
    )

    assert response.json() == {"status": "accepted"}
    row = InboxEvent.objects.get()
    assert row.saleor_api_url == CAPTURED_API_URL
    # the key is the one the worker's translation of the same delivery would carry
    assert row.dedupe_key == translate_webhook("ORDER_CREATED", BODY, CAPTURED_API_URL).dedupe_key


def test_duplicate_delivery_answers_200_and_is_stored_once(registered, signer, client):
    signature = signer.sign(BODY)

    answers = [post(client, BODY, signature).json()["status"] for _ in range(3)]

    assert answers == ["accepted", "duplicate", "duplicate"]
    assert InboxEvent.objects.count() == 1


@pytest.mark.django_db
def test_server_bound_insert_stores_what_the_orm_would():
    capture = load_capture("ORDER_FULLY_PAID", "subscription")
    event = translate_webhook(capture.event_header, capture.raw_body, capture.api_url)

    row = inbox.store_event(event, kick=False)

    stored = InboxEvent.objects.get()
    assert row is not None and row.pk == stored.pk and not row._state.adding
    assert stored.payload == json.loads(json.dumps(event.to_dict()))
    assert stored.issued_at == event.issued_at
    assert (stored.kind, stored.source, stored.object_id) == (
        event.kind.value,
        event.source.value,
        event.object_id,
    )
    assert (stored.status, stored.attempts, stored.raw_body) == (InboxStatus.PENDING, 0, "")
    assert stored.subject_user_id == (event.subject_user_id or "")
    assert inbox.store_event(event, kick=False) is None
    assert InboxEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_insert_joins_the_surrounding_transaction():
    capture = load_capture("ORDER_CREATED", "subscription")
    event = translate_webhook(capture.event_header, capture.raw_body, capture.api_url)

    with pytest.raises(RuntimeError), transaction.atomic():
        assert inbox.store_event(event, kick=False) is not None
        raise RuntimeError("rolled back")

    assert InboxEvent.objects.count() == 0
    assert inbox.store_event(event, kick=False) is not None


@pytest.mark.django_db
def test_insert_errors_are_django_errors():
    capture = load_capture("ORDER_CREATED", "subscription")
    event = translate_webhook(capture.event_header, capture.raw_body, capture.api_url)
    row = InboxEvent(dedupe_key=event.dedupe_key, kind="x" * 41, source="webhook")

    with pytest.raises(DataError), transaction.atomic():
        inbox._insert_unless_known(row)


def _redis_cache():
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("no Redis at CRM_TEST_REDIS_URL")
    from saleor_crm_plugin.app.cache import RedisCache

    return RedisCache(REDIS_URL, {"KEY_PREFIX": "crm-test-webhook-ack"})


def test_redis_cache_reuses_one_client_and_keeps_add_semantics():
    cache = _redis_cache()
    cache.delete("kick")

    assert cache._cache.get_client(write=True) is cache._cache.get_client(write=True)
    assert cache.add("kick", 1, timeout=5) is True
    assert cache.add("kick", 1, timeout=5) is False
    assert cache.get("kick") == 1
    assert cache.delete("kick") is True
    assert cache.add("kick", 1, timeout=5) is True
    cache.delete("kick")


def test_redis_cache_add_flag_is_add_of_one_with_its_key_and_expiry():
    cache = _redis_cache()
    cache.delete("kick")
    client = cache._cache.get_client(write=True)

    assert cache.add_flag("kick", 7) is True
    assert cache.add_flag("kick", 7) is False  # the pre-encoded command is reused
    assert cache.add("kick", 1, timeout=7) is False  # the same key as ``add`` would set
    assert cache.get("kick") == 1
    assert 0 < client.ttl(cache.make_and_validate_key("kick")) <= 7
    assert cache.delete("kick") is True
    assert cache.add("kick", 1, timeout=7) is True
    assert cache.add_flag("kick", 7) is False
    # One connection is kept for the thread's flags; nothing else stays borrowed.
    assert client.connection_pool._in_use_connections == {cache._flag_connection()}
    cache.delete("kick")


def test_redis_cache_add_flag_borrows_its_connection_once_per_thread(monkeypatch):
    import threading

    cache = _redis_cache()
    cache.delete("kick")
    pool = cache._cache.get_client(write=True).connection_pool
    borrowed = []
    get_connection = pool.get_connection

    def counting(*args, **kwargs):
        conn = get_connection(*args, **kwargs)
        borrowed.append(conn)
        return conn

    monkeypatch.setattr(pool, "get_connection", counting)
    answers = [cache.add_flag("kick", 5) for _ in range(3)]
    assert answers == [True, False, False]
    assert len(borrowed) == 1

    other: list[bool] = []
    thread = threading.Thread(target=lambda: other.append(cache.add_flag("kick", 5)))
    thread.start()
    thread.join()
    assert other == [False]
    assert len(borrowed) == 2 and borrowed[0] is not borrowed[1]  # a thread has its own
    assert cache.delete("kick") is True


def test_redis_cache_add_flag_sends_again_when_the_server_closed_the_kept_connection():
    import redis

    cache = _redis_cache()
    cache.delete("kick")
    assert cache.add_flag("kick", 5) is True
    kept = cache._flag_connection()
    kept.send_command("CLIENT", "ID")
    client_id = kept.read_response()
    # As a Redis restart or its idle ``timeout`` leaves it: the server closed the socket.
    assert redis.Redis.from_url(REDIS_URL).client_kill_filter(_id=client_id) == 1

    assert cache.add_flag("kick", 5) is False  # answered, on a new socket
    assert cache._flag_connection() is kept
    assert cache.delete("kick") is True
    assert cache.add_flag("kick", 5) is True
    cache.delete("kick")


def test_redis_cache_add_flag_borrows_a_new_connection_after_a_fork():
    from saleor_crm_plugin.app import cache as cache_module

    cache = _redis_cache()
    cache.delete("kick")
    assert cache.add_flag("kick", 5) is True
    parents = cache._flag_connection()
    pool = cache._cache.get_client(write=True).connection_pool
    cache_module._count_fork()  # what ``os.register_at_fork`` runs in a child

    assert cache.add_flag("kick", 5) is False
    assert cache._flag_connection() is not parents
    assert parents in pool._in_use_connections  # never handed to anyone else
    cache.delete("kick")


def test_redis_cache_add_flag_reconnects_after_the_connection_dropped():
    cache = _redis_cache()
    cache.delete("kick")
    assert cache.add_flag("kick", 5) is True
    pool = cache._cache.get_client(write=True).connection_pool
    for conn in [*pool._available_connections, *pool._in_use_connections]:
        conn._sock.close()  # as a Redis restart would leave it; redis-py reconnects

    assert cache.add_flag("kick", 5) is False
    assert cache.delete("kick") is True


def test_redis_cache_add_flag_raises_and_frees_the_connection_when_redis_is_gone():
    redis = pytest.importorskip("redis")
    from saleor_crm_plugin.app.cache import RedisCache

    cache = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})
    with pytest.raises(redis.ConnectionError):
        cache.add_flag("kick", 5)
    pool = cache._cache.get_client(write=True).connection_pool
    assert not pool._in_use_connections


def test_redis_cache_add_flag_drops_a_connection_that_failed_mid_command(monkeypatch):
    redis = pytest.importorskip("redis")
    from saleor_crm_plugin.app import cache as cache_module

    cache = _redis_cache()
    cache.delete("kick")
    pool = cache._cache.get_client(write=True).connection_pool

    def broken(conn, packed):
        raise redis.ConnectionError("reset by peer")

    monkeypatch.setattr(cache_module, "_send_packed", broken)
    with pytest.raises(redis.ConnectionError):
        cache.add_flag("kick", 5)
    assert not pool._in_use_connections
    assert all(conn._sock is None for conn in pool._available_connections)  # disconnected
    monkeypatch.undo()
    assert cache.add_flag("kick", 5) is True  # the next call reconnects
    cache.delete("kick")


@pytest.mark.django_db
def test_kick_falls_back_to_add_on_a_cache_without_add_flag(settings, monkeypatch):
    from django.core.cache import cache

    from saleor_crm_plugin.tasks.ingest import process_inbox_task

    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 5  # the test settings' cache is local memory
    assert not hasattr(cache, "add_flag")
    cache.delete(inbox.KICK_CACHE_KEY)
    kicks = []
    monkeypatch.setattr(process_inbox_task, "delay", lambda: kicks.append(1))

    inbox.enqueue_processing()
    inbox.enqueue_processing()
    assert kicks == [1]
    assert cache.get(inbox.KICK_CACHE_KEY) == 1
    cache.delete(inbox.KICK_CACHE_KEY)


@pytest.mark.django_db
def test_coalesced_kick_on_redis_sends_one_task_per_drain(settings, monkeypatch):
    _redis_cache()
    from django.core.cache import cache

    from saleor_crm_plugin.tasks.ingest import process_inbox_task

    settings.CACHES = {
        "default": {
            "BACKEND": "saleor_crm_plugin.app.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "crm-test-webhook-kick",
        }
    }
    settings.CRM_INBOX_KICK_COALESCE_SECONDS = 5
    cache.delete(inbox.KICK_CACHE_KEY)
    kicks = []
    monkeypatch.setattr(process_inbox_task, "delay", lambda: kicks.append(1))

    for _ in range(3):
        inbox.enqueue_processing()
    assert len(kicks) == 1
    inbox.process_pending()  # the drain clears the marker ...
    inbox.enqueue_processing()
    assert len(kicks) == 2  # ... so the next row kicks again
    cache.delete(inbox.KICK_CACHE_KEY)


@pytest.mark.django_db
def test_raw_insert_stores_what_the_orm_would():
    from django.utils import timezone

    def store(key: str) -> bool:
        return inbox.store_webhook(
            dedupe_key=key,
            kind="order_created",
            saleor_api_url=CAPTURED_API_URL,
            raw_body=BODY.decode(),
            kick=False,
        )

    assert store("raw") is True
    assert store("raw") is False
    orm = InboxEvent.objects.create(
        dedupe_key="orm",
        kind="order_created",
        source=inbox.WEBHOOK_SOURCE,
        saleor_api_url=CAPTURED_API_URL,
        raw_body=BODY.decode(),
    )
    raw, orm = InboxEvent.objects.get(dedupe_key="raw"), InboxEvent.objects.get(pk=orm.pk)

    per_row = {"id", "dedupe_key", "received_at", "available_at"}
    for field in InboxEvent._meta.concrete_fields:  # a new column must be written by both
        if field.attname not in per_row:
            assert getattr(raw, field.attname) == getattr(orm, field.attname), field.name
    assert raw.received_at == raw.available_at
    assert abs(timezone.now() - raw.received_at).total_seconds() < 60
    assert (raw.status, raw.payload, raw.source) == (InboxStatus.PENDING, {}, "webhook")
    assert InboxEvent.objects.count() == 2


@pytest.mark.django_db
def test_raw_bodies_are_compressed_with_lz4_where_postgres_has_it():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        (methods,) = cursor.fetchone()
        if "lz4" not in (methods or []):
            pytest.skip("this PostgreSQL has no lz4")
        cursor.execute(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = 'raw_body'",
            [InboxEvent._meta.db_table],
        )
        assert cursor.fetchone() == ("l",)


@pytest.mark.django_db
def test_inbox_table_has_exactly_its_declared_indexes():
    """No ``varchar_pattern_ops`` copies (migration 0015): every insert paid for them and
    nothing runs ``LIKE`` on these columns. The unique index on ``dedupe_key`` stays: the
    inserts' ``ON CONFLICT (dedupe_key)`` needs it."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's indexes")
    table = InboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        definitions = dict(cursor.fetchall())
    found = {name: definition.split(" USING ", 1)[1] for name, definition in definitions.items()}
    assert found == {
        f"{table}_pkey": "btree (id)",
        "crm_inbox_dedupe_key_uniq": "btree (dedupe_key)",
        "crm_inbox_subj_user_set_idx": (
            "btree (subject_user_id) WHERE (NOT ((subject_user_id)::text = ''::text))"
        ),
        "crm_inbox_subj_email_set_idx": (
            "btree (subject_email_hash) WHERE (NOT ((subject_email_hash)::text = ''::text))"
        ),
        "crm_inbox_pending_idx": (
            "btree (available_at, id) WHERE ((status)::text = 'pending'::text)"
        ),
        "crm_inbox_unresolved_idx": (
            "btree (status, received_at) "
            "WHERE ((status)::text = ANY ((ARRAY['failed'::character varying, "
            "'invalid'::character varying])::text[]))"
        ),
        # Not in the model's state (SQLite has no BRIN): migration 0016, for ``prune``.
        "crm_inbox_received_brin": "brin (received_at)",
    }
    assert "UNIQUE" in definitions["crm_inbox_dedupe_key_uniq"]


@pytest.mark.django_db
def test_dropping_the_like_indexes_again_changes_nothing():
    """The migration is not atomic (``DROP INDEX CONCURRENTLY``), so a run interrupted
    half-way is repeated: its step must find the declared indexes and leave them alone."""
    import importlib

    from django.apps import apps
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's indexes")
    migration = importlib.import_module("saleor_crm_plugin.migrations.0015_inbox_drop_like_indexes")
    executed: list[str] = []
    with connection.schema_editor(collect_sql=True) as editor:
        migration._forwards(apps, editor)
        executed = editor.collected_sql
    # Since 0016 the subject indexes are partial, under other names, so 0015 (which looks for
    # plain ones) would build its two again: nothing else, no drop, no rename.
    table = InboxEvent._meta.db_table
    assert executed == [
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "crm_inbox_subject_user_idx" '
        f'ON "{table}" ("subject_user_id");',
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "crm_inbox_subject_email_idx" '
        f'ON "{table}" ("subject_email_hash");',
    ]


@pytest.mark.django_db
def test_leaner_inbox_indexes_again_changes_nothing():
    """Migration 0016 is not atomic either (``CONCURRENTLY``): repeated on the migrated
    table it builds and drops nothing."""
    import importlib

    from django.apps import apps
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's indexes")
    migration = importlib.import_module("saleor_crm_plugin.migrations.0016_inbox_lean_indexes")
    with connection.schema_editor(collect_sql=True) as editor:
        migration._forwards(apps, editor)
        executed = editor.collected_sql
    assert executed == []


def test_redis_cache_add_flag_raises_redis_errors_and_returns_its_connection():
    redis = pytest.importorskip("redis")
    cache = _redis_cache()
    cache.delete("kick")
    pool = cache._cache.get_client(write=True).connection_pool

    with pytest.raises(redis.ResponseError, match="invalid expire time"):
        cache.add_flag("kick", 0)  # ``EX 0``: Redis answers with an error
    assert not pool._in_use_connections
    assert cache.add_flag("kick", 5) is True  # the connection was left clean
    cache.delete("kick")


@pytest.mark.parametrize(
    "api_url", [CAPTURED_API_URL, "https://other.example/graphql/", "https://bücher.example/g/"]
)
@pytest.mark.parametrize("event", ["ORDER_CREATED", "customer_updated", " Order_Paid "])
def test_ack_dedupe_key_is_webhook_dedupe_key(api_url, event):
    """Differential: the key the view computes from a remembered prefix is the one
    ``webhook_dedupe_key`` computes (the key existing rows are stored under), repeatedly."""
    from saleor_crm_plugin.events.from_webhook import event_kind_from_header, webhook_dedupe_key

    kind = event_kind_from_header(event)
    assert views._event_kind(event) is kind
    for body in (BODY, b"", b"\x00", '{"name": "Zoë"}'.encode(), BODY + b" "):
        for _ in range(2):
            assert views._dedupe_key(api_url, kind, body) == webhook_dedupe_key(api_url, kind, body)


def test_unsupported_event_names_are_refused_every_time():
    from saleor_crm_plugin.events.exceptions import UnsupportedEvent

    for _ in range(2):
        with pytest.raises(UnsupportedEvent):
            views._event_kind("PRODUCT_CREATED")
        with pytest.raises(UnsupportedEvent):
            views._event_kind("")
