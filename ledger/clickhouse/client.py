"""The one way into ClickHouse: a process-wide client, bound parameters, UTC-aware results.

Embedded mode uses chDB (the ClickHouse engine in-process, locked to one process); production
uses a ClickHouse server over HTTP. Both speak through the same clickhouse-connect ``Client``.

Every statement carries a ``log_comment`` (compact JSON: the caller and, when known, the project)
and a ``max_execution_time``, so an operator finds a slow query in ``system.query_log`` and the
server stops a runaway one. The caller is the ``caller`` keyword, else the calling module and
function; the project is the ``project`` keyword, else the bound ``project``/``project_id``/``p``
parameter (for inserts: the ``project_id`` column when it holds one project). Reads (``query``, and
a ``command`` that is a ``SELECT``) are bounded by ``CLICKHOUSE_MAX_EXECUTION_TIME``; writes by
``CLICKHOUSE_MAX_EXECUTION_TIME_WRITE`` (0: no bound). On a cluster (``CLICKHOUSE_CLUSTER``) every
statement also carries the Distributed-table settings of ``ledger.clickhouse.cluster.CLIENT_SETTINGS``.
Settings a caller passes win over these.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError, ProgrammingError
from clickhouse_connect.driver.query import QueryResult
from django.conf import settings as django_settings

from ledger import telemetry
from ledger.clickhouse.cluster import CLIENT_SETTINGS

_lock = threading.Lock()
_clients: dict[tuple[str, str], ClickHouse] = {}
_PROJECT_PARAMETERS = ("project", "project_id", "p")
_READ = re.compile(r"\s*(?:\(\s*)*(?:SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.IGNORECASE)


def _calling_function() -> str:
    """``module.function`` of the nearest caller outside this module."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}"


def _project_of(parameters: Mapping[str, Any] | None) -> int | None:
    for key in _PROJECT_PARAMETERS:
        value = (parameters or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _statement_settings(
    *, caller: str | None, project: int | None, write: bool, settings: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The settings sent with one statement: log comment and time bound, then the caller's own settings."""
    comment: dict[str, Any] = {"caller": caller or _calling_function()}
    if project is not None:
        comment["project"] = project
    out: dict[str, Any] = {"log_comment": json.dumps(comment, separators=(",", ":"))}
    if django_settings.CLICKHOUSE_CLUSTER:
        out.update(CLIENT_SETTINGS)
    limit = int(
        django_settings.CLICKHOUSE_MAX_EXECUTION_TIME_WRITE if write else django_settings.CLICKHOUSE_MAX_EXECUTION_TIME
    )
    if limit > 0:
        out["max_execution_time"] = limit
    out.update(settings or {})
    return out


class EngineLocked(OperationalError):
    """chDB could not open its directory: another process holds it (chDB is single-process). Like a
    server that does not answer, the store is unreachable from here; it is never bad data."""


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
            try:
                return clickhouse_connect.get_client(dsn=self.url, database=database)
            except ProgrammingError as exc:  # what clickhouse-connect makes of chDB's "Cannot lock file"
                if "Unable to open the chdb engine" not in str(exc):
                    raise
                raise EngineLocked(f"{exc} (is another process using this chDB directory?)") from exc
        # Server: connect from the URL's parts, so the scheme (not the port) decides TLS and a
        # database in the path never reaches the bootstrap connection that creates it.
        url = urlparse(self.url)
        secure = url.scheme == "https"
        # Wait longer than the server's own bound, so a statement is stopped by ClickHouse (cleanly, and
        # named in the query log) rather than abandoned by the client while the server runs on.
        bound = max(django_settings.CLICKHOUSE_MAX_EXECUTION_TIME, django_settings.CLICKHOUSE_MAX_EXECUTION_TIME_WRITE)
        return clickhouse_connect.get_client(
            interface="https" if secure else "http",
            host=url.hostname,
            port=url.port or (8443 if secure else 8123),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else "",
            database=database or "default",
            autogenerate_session_id=False,
            connect_timeout=5,
            send_receive_timeout=max(300, bound + 30),
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

    def _timed(self, kind: str, caller: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``_run``, observed into ``meterline_clickhouse_query_seconds`` (chDB: including the engine lock wait)."""
        return telemetry.timed_statement(kind, caller, self._run, fn, *args, **kwargs)

    def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        caller: str | None = None,
        project: int | None = None,
        settings: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> QueryResult:
        """Run a read; ``caller`` names it in the query log (default: the calling module.function)."""
        caller = caller or _calling_function()
        sent = _statement_settings(
            caller=caller,
            project=project if project is not None else _project_of(parameters),
            write=False,
            settings=settings,
        )
        return self._timed("read", caller, self.client.query, sql, parameters=parameters, settings=sent, **kwargs)  # type: ignore[no-any-return]

    def command(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        caller: str | None = None,
        project: int | None = None,
        settings: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run a statement (a ``SELECT`` is bounded as a read, anything else as a write)."""
        caller = caller or _calling_function()
        write = _READ.match(sql) is None
        sent = _statement_settings(
            caller=caller,
            project=project if project is not None else _project_of(parameters),
            write=write,
            settings=settings,
        )
        kind = "write" if write else "read"
        return self._timed(kind, caller, self.client.command, sql, parameters=parameters, settings=sent, **kwargs)

    def insert(
        self,
        table: str,
        columns: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        settings: dict[str, Any] | None = None,
        *,
        caller: str | None = None,
        project: int | None = None,
    ) -> None:
        """Insert column-oriented data; the caller's settings (e.g. a deduplication token) are kept."""
        names = list(column_names)
        caller = caller or _calling_function()
        if project is None and "project_id" in names:
            projects = set(columns[names.index("project_id")])
            project = next(iter(projects)) if len(projects) == 1 else None
        sent = _statement_settings(caller=caller, project=project, write=True, settings=settings)
        self._timed(
            "write", caller, self.client.insert, table, columns, column_names=names, column_oriented=True, settings=sent
        )

    def bootstrap(self, on_cluster: str | None = None) -> None:
        """Create the database itself (needs a client not bound to it); ``on_cluster``: on every node."""
        raw = self._connect(None)
        caller = "ledger.clickhouse.client.bootstrap"
        sent = _statement_settings(caller=caller, project=None, write=True)
        sql = f"CREATE DATABASE IF NOT EXISTS `{self.database}`" + (f" {on_cluster}" if on_cluster else "")
        self._timed("write", caller, raw.command, sql, settings=sent)

    def close(self) -> None:
        if self._client is not None:
            self._run(self._client.close)
            self._client = None


def get_clickhouse() -> ClickHouse:
    """The process-wide client for the current ``CLICKHOUSE_URL`` and database."""
    key = (str(django_settings.CLICKHOUSE_URL), django_settings.CLICKHOUSE_DATABASE)
    ch = _clients.get(key)
    if ch is None:
        with _lock:
            ch = _clients.get(key)
            if ch is None:
                ch = _clients[key] = ClickHouse(*key)
    return ch
