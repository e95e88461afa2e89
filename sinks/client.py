"""ClickHouse client from the one DSN setting.

``chdb:///abs/path`` (or ``chdb:rel/path``, relative to the working directory) is the embedded
engine; ``http(s)://user:pass@host:8123/db`` is a real server. Both come from
``clickhouse_connect.get_client(dsn=...)``, which picks its in-process chDB backend for the
``chdb:`` scheme.

chDB hosts one data directory per process, and a directory must not be opened by two
processes. So :func:`connect` hands out one shared client per DSN for the whole process, and
every call on it is serialised by a lock: the Faust worker calls it from
``asyncio.to_thread`` worker threads, the HTTP API from others.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ProgrammingError
from clickhouse_connect.driver.query import QueryResult
from clickhouse_connect.driver.summary import QuerySummary

from sinks.chdb_holders import describe

__all__ = [
    "AnyClient",
    "SharedClient",
    "chdb_path",
    "close_all",
    "connect",
]

_MEMORY_LOCATIONS = ("", "memory", ":memory:")


class SharedClient:
    """One clickhouse-connect client shared by all threads, one call at a time.

    The common methods are spelled out for type checkers; anything else is forwarded to the
    wrapped client under the same lock. ``client`` is the wrapped clickhouse-connect client,
    for code that takes ``lock`` itself around a sequence of calls.
    """

    def __init__(self, key: str, dsn: str, client: Client) -> None:
        self.key = key
        self.dsn = dsn
        self.client = client
        # Re-entrant so a caller holding it for a sequence can still use these methods.
        self.lock = threading.RLock()
        self.closed = False

    @property
    def is_embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def query(self, query: str, parameters: Any = None, **kwargs: Any) -> QueryResult:
        with self.lock:
            return self.client.query(query, parameters=parameters, **kwargs)

    def command(self, cmd: str, parameters: Any = None, **kwargs: Any) -> Any:
        with self.lock:
            return self.client.command(cmd, parameters=parameters, **kwargs)

    def insert(self, table: str, data: Any, column_names: Any = "*", **kwargs: Any) -> QuerySummary:
        with self.lock:
            return self.client.insert(table, data, column_names=column_names, **kwargs)

    def raw_query(self, query: str, parameters: Any = None, **kwargs: Any) -> bytes:
        with self.lock:
            return self.client.raw_query(query, parameters=parameters, **kwargs)

    def ping(self) -> bool:
        with self.lock:
            return self.client.ping()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return attr(*args, **kwargs)

        return locked

    def close(self) -> None:
        """Closes the engine handle for every user of this DSN; later users reconnect."""
        with _cache_lock:
            if _clients.get(self.key) is self:
                del _clients[self.key]
            self._close_locked()

    def _close_locked(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.client.close()

    def __repr__(self) -> str:
        return f"SharedClient({self.key!r})"


AnyClient = SharedClient | Client

_cache_lock = threading.Lock()
_clients: dict[str, SharedClient] = {}


def chdb_path(dsn: str) -> str | None:
    """The absolute data directory a ``chdb:`` DSN names; None for in-memory or non-chdb DSNs.

    Parsed exactly as clickhouse-connect parses it: ``chdb:///a/b`` is ``/a/b`` and
    ``chdb:a/b`` is ``./a/b``.
    """
    if not dsn.startswith("chdb:"):
        return None
    parsed = urlparse(dsn)
    location = parsed.netloc.rpartition("@")[2] if parsed.netloc else unquote(parsed.path)
    if location in _MEMORY_LOCATIONS:
        return None
    # chDB compares engine paths literally; realpath is how clickhouse-connect spells them.
    return os.path.realpath(location)


def _cache_key(dsn: str, lane: str) -> str:
    if dsn.startswith("chdb:"):
        path = chdb_path(dsn)
        return f"chdb:{path or ':memory:'}#{lane}"
    return f"{dsn}#{lane}"


def _open_chdb(dsn: str) -> Client:
    path = chdb_path(dsn)
    if path is not None:
        os.makedirs(path, exist_ok=True)
    try:
        return clickhouse_connect.get_client(dsn=dsn, tz_mode="aware")
    except ProgrammingError as exc:
        open_paths = sorted({c.key.split("#")[0] for c in _clients.values()})
        if open_paths:
            why = f"this process already holds {open_paths} (close_all() first)"
        else:
            others = describe(Path(path)) if path is not None else ""
            why = f"held by {others}" if others else "another process may hold it"
        raise ProgrammingError(
            f"cannot open chDB at {path!r}: {why}; chDB allows one data directory per process"
        ) from exc


def _open_http(dsn: str, factory: Callable[..., Client]) -> Client:
    # The shared client is used from several threads: per-client HTTP sessions would make
    # concurrent queries fail ("concurrent queries within the same session").
    parsed = urlparse(dsn)
    kwargs: dict[str, Any] = {
        "tz_mode": "aware",
        "autogenerate_session_id": False,
        # clickhouse-connect infers TLS from the port only (443/8443), not the DSN's scheme.
        "interface": parsed.scheme,
    }
    database = unquote(parsed.path.strip("/").split("/")[0])
    if database and database != "default":
        # A DSN may name a database that does not exist yet (a fresh server): create it
        # through the default database first, as the DDL is applied at start anyway.
        bootstrap = factory(dsn=dsn, database="default", **kwargs)
        try:
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
        finally:
            bootstrap.close()
    return factory(dsn=dsn, **kwargs)


def connect(dsn: str, *, lane: str = "default") -> SharedClient:
    """The process-wide client for ``dsn``: created on first use, shared afterwards.

    ``lane`` gives a second, independently locked client on the same store (chDB allows any
    number of handles to the one engine), e.g. so a long analyst query on the HTTP API does
    not hold up the sink's inserts.
    """
    key = _cache_key(dsn, lane)
    with _cache_lock:
        shared = _clients.get(key)
        if shared is not None:
            return shared
        if dsn.startswith("chdb:"):
            client = _open_chdb(dsn)
        elif dsn.startswith(("http://", "https://")):
            client = _open_http(dsn, clickhouse_connect.get_client)
        else:
            raise ValueError(
                f"unsupported ClickHouse DSN {dsn!r}: use chdb:///path or http(s)://host:port/db"
            )
        shared = _clients[key] = SharedClient(key, dsn, client)
        return shared


def close_all() -> None:
    """Closes every shared client, releasing the chDB directory (tests, shutdown)."""
    with _cache_lock:
        for shared in list(_clients.values()):
            shared._close_locked()
        _clients.clear()
