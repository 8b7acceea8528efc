"""The one way into ClickHouse: a process-wide client, bound parameters, UTC-aware results.

Embedded mode uses chDB (the ClickHouse engine in-process, locked to one process); production
uses a ClickHouse server over HTTP. Both speak through the same clickhouse-connect ``Client``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.query import QueryResult
from django.conf import settings

_lock = threading.Lock()
_clients: dict[tuple[str, str], ClickHouse] = {}


class ClickHouse:
    """A shared client. chDB calls are serialised (one engine handle per process)."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self.embedded = url.startswith("chdb:")
        self._serial = threading.RLock() if self.embedded else None
        self._client: Client | None = None

    def _connect(self, database: str | None) -> Client:
        if self.embedded:
            return clickhouse_connect.get_client(dsn=self.url, database=database)
        # Server: connect from the URL's parts, so the scheme (not the port) decides TLS and a
        # database in the path never reaches the bootstrap connection that creates it.
        url = urlparse(self.url)
        secure = url.scheme == "https"
        return clickhouse_connect.get_client(
            interface="https" if secure else "http",
            host=url.hostname,
            port=url.port or (8443 if secure else 8123),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else "",
            database=database or "default",
            autogenerate_session_id=False,
            connect_timeout=5,
            send_receive_timeout=300,
        )

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._connect(self.database)
        return self._client

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._serial is None:
            return fn(*args, **kwargs)
        with self._serial:
            return fn(*args, **kwargs)

    def query(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> QueryResult:
        return self._run(self.client.query, sql, parameters=parameters, **kwargs)  # type: ignore[no-any-return]

    def command(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self._run(self.client.command, sql, parameters=parameters, **kwargs)

    def insert(
        self,
        table: str,
        columns: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        settings: dict[str, Any] | None = None,
    ) -> None:
        self._run(
            self.client.insert,
            table,
            columns,
            column_names=list(column_names),
            column_oriented=True,
            settings=settings,
        )

    def bootstrap(self) -> None:
        """Create the database itself (needs a client not bound to it)."""
        raw = self._connect(None)
        self._run(raw.command, f"CREATE DATABASE IF NOT EXISTS `{self.database}`")

    def close(self) -> None:
        if self._client is not None:
            self._run(self._client.close)
            self._client = None


def get_clickhouse() -> ClickHouse:
    """The process-wide client for the current ``CLICKHOUSE_URL`` and database."""
    key = (str(settings.CLICKHOUSE_URL), settings.CLICKHOUSE_DATABASE)
    ch = _clients.get(key)
    if ch is None:
        with _lock:
            ch = _clients.get(key)
            if ch is None:
                ch = _clients[key] = ClickHouse(*key)
    return ch
