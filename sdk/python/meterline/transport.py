"""The one seam for the SDK's outbound HTTP: ``Transport.post``. Standard library only.

Tests replace it with any object that has the same ``post`` and ``reset`` methods.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

CALLS_PATH = "/v1/calls"


@dataclass(frozen=True)
class Reply:
    """What the server answered: status, ``Retry-After`` in seconds (if any) and the body."""

    status: int
    retry_after: float | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """POST a gzip JSON body to the calls endpoint; raises ``OSError`` when the network fails."""
        ...

    def reset(self) -> None:
        """Forget any open connection (after a fork the parent's socket is not ours)."""
        ...


class HttpTransport:
    """HTTP/1.1 with one kept-alive connection, used by the consumer thread alone."""

    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("meterline: endpoint must be an http(s) URL such as https://meterline.example.com")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self.path = parts.path.rstrip("/") + CALLS_PATH
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.connect()
        # One request is one write, but a small one must not wait on Nagle for the server's ACK.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = self._connect(timeout)
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.reset()
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"bad HTTP exchange: {type(exc).__name__}") from exc
        if response.will_close:
            self.reset()
        return Reply(
            status=response.status,
            retry_after=parse_retry_after(response.getheader("Retry-After")),
            body=data,
            headers={k.lower(): v for k, v in response.getheaders()},
        )

    def reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; HTTP dates are rare from Meterline and ignored."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
