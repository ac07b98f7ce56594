"""Django's Redis cache with one Redis client per connection pool instead of one per call.

``django.core.cache.backends.redis`` builds a new ``redis.Redis`` for every operation, and
redis-py fills two ~120-entry callback tables in each constructor: on the webhook path (one
coalesced-kick ``SET NX`` per delivery) that cost more CPU than the round trip itself. A
``redis.Redis`` over a pool is thread-safe (each command borrows a pooled connection) and the
pool re-creates its connections after a fork, so keeping one per pool is safe.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
        self._packed_flags: dict[tuple[str, int], Any] = {}
        self._flag_connections = threading.local()

    def add_flag(self, key: str, timeout: int) -> bool:
        """``add(key, 1, timeout)``, the same ``SET key 1 EX timeout NX`` on the same Redis,
        with the command encoded once per key and timeout instead of per call.

        The inbox kick sends this once per acknowledged webhook; Django's key building and
        redis-py's argument encoding were about half of its CPU, the round trip the rest.
        The connection is borrowed from the cache's pool once per thread and process and kept
        (``_flag_connection``): the pool's borrow checks the socket for unread data on every
        call (a non-blocking ``recv`` that raises and catches ``BlockingIOError``), a third
        of the kick's remaining instructions. What that check guards against, a socket the
        server closed while it was idle, is handled here instead: the command is sent once
        more on a new socket after a ``ConnectionError`` (the server never read a command
        sent on a socket it had closed). Otherwise as ``Redis.execute_command``: the
        connection's retry policy, disconnect on error; a connection that failed twice goes
        back to the pool."""
        conn = self._flag_connection()
        packed = self._packed_flags.get((key, timeout))
        if packed is None:
            # The value as Django's serializer stores an int (digits, so ``get`` reads 1).
            packed = conn.pack_command(
                "SET", self.make_and_validate_key(key), 1, "EX", timeout, "NX"
            )
            self._packed_flags[(key, timeout)] = packed
        try:
            return _send_flag(conn, packed)
        except RedisConnectionError:
            pass
        except BaseException:
            self._return_flag_connection(conn)
            raise
        try:
            return _send_flag(conn, packed)  # ``send_packed_command`` connects again
        except BaseException:
            self._return_flag_connection(conn)
            raise

    def _flag_connection(self) -> Any:
        """This thread's kept connection, borrowed (with the pool's checks) when there is
        none yet or the process forked since it was (a child never uses its parent's socket;
        the pool itself starts afresh in a child)."""
        kept = getattr(self._flag_connections, "kept", None)
        if kept is not None and kept[0] == _forks[0]:
            return kept[2]
        pool = self._cache.get_client(write=True).connection_pool
        conn = pool.get_connection("SET")
        self._flag_connections.kept = (_forks[0], pool, conn)
        return conn

    def _return_flag_connection(self, conn: Any) -> None:
        kept = getattr(self._flag_connections, "kept", None)
        if kept is not None and kept[2] is conn:
            del self._flag_connections.kept
            if kept[0] == _forks[0]:
                kept[1].release(conn)


# Forks of this process so far, as seen by the child: a kept connection remembers the count
# it was borrowed at (``os.getpid()`` per kick would be a system call).
_forks = [0]


def _count_fork() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_count_fork)


def _send_flag(conn: Any, packed: Any) -> bool:
    return bool(
        conn.retry.call_with_retry(
            lambda: _send_packed(conn, packed),
            lambda error: _disconnect_raise(conn, error),
        )
    )


def _send_packed(conn: Any, packed: Any) -> Any:
    conn.send_packed_command(packed)
    return conn.read_response()


def _disconnect_raise(conn: Any, error: Exception) -> None:
    """What ``Redis._disconnect_raise`` does (a private method, so not called from here):
    drop the connection, and give the retry policy a chance only for errors it names."""
    conn.disconnect()
    if conn.retry_on_error is None or not isinstance(error, tuple(conn.retry_on_error)):
        raise error
