"""Test helpers for the SDK: a local Meterline sink, a scripted transport and a clock.

The sink is a real HTTP server (stdlib, in a thread) standing in for ``POST /v1/calls``: it keeps
every request (headers and decoded calls) and answers from a script, 202 by default.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import meterline
from meterline.transport import Reply


@dataclass
class Received:
    headers: dict[str, str]
    calls: list[dict[str, Any]]


def decode(body: bytes, encoding: str = "gzip") -> list[dict[str, Any]]:
    raw = gzip.decompress(body) if encoding == "gzip" else body
    calls: list[dict[str, Any]] = json.loads(raw)["calls"]
    return calls


def accepted(count: int) -> bytes:
    return json.dumps({"batch_id": "b", "accepted": count, "rejected": []}).encode()


class Sink:
    """A stand-in for Meterline's calls endpoint (on ``port`` when given: one that comes back)."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self._changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                # Many small writes (SSE events): do not let Nagle and delayed ACKs space them out.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                calls = decode(body, self.headers.get("Content-Encoding", ""))
                with sink._changed:
                    status, headers = sink.script.popleft() if sink.script else (202, {})
                    if status == 202:
                        sink.requests.append(Received(dict(self.headers.items()), calls))
                    sink._changed.notify_all()
                answer = accepted(len(calls)) if status == 202 else b'{"detail": "scripted"}'
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def calls(self) -> list[dict[str, Any]]:
        with self._changed:
            return [call for request in self.requests for call in request.calls]

    def wait_for_calls(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(len(r.calls) for r in self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        return self.calls()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BlackHole:
    """An endpoint gone silent: it accepts TCP connections, reads nothing and never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.held: list[socket.socket] = []  # every connection accepted, kept open and unanswered
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.held.append(conn)

    def connections(self) -> int:
        with self._lock:
            return len(self.held)

    def close(self) -> None:
        """Stop listening (the port can then be taken by a :class:`Sink`) and drop what it held."""
        if self._listener.fileno() == -1:
            return  # already closed
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)
        with self._lock:
            for conn in self.held:
                conn.close()


@dataclass
class Sent:
    body: bytes
    headers: dict[str, str]
    outcome: Any  # the status answered, or the exception raised

    @property
    def calls(self) -> list[dict[str, Any]]:
        return decode(self.body)


@dataclass
class ScriptedTransport:
    """The transport seam replaced: keeps what was posted, answers from a script (202 by default).

    A script entry is a status, a ``(status, retry_after)`` pair, or an exception to raise."""

    script: deque[Any] = field(default_factory=deque)
    sent: list[Sent] = field(default_factory=list)
    resets: int = 0

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        step = self.script.popleft() if self.script else 202
        self.sent.append(Sent(body, dict(headers), step[0] if isinstance(step, tuple) else step))
        if isinstance(step, BaseException):
            raise step
        status, retry_after = step if isinstance(step, tuple) else (step, None)
        body_out = accepted(len(decode(body))) if status == 202 else b'{"detail": "scripted"}'
        return Reply(status, retry_after, body_out)

    def reset(self) -> None:
        self.resets += 1

    def delivered(self) -> list[dict[str, Any]]:
        """Calls of the requests answered 202."""
        return [call for s in self.sent if s.outcome == 202 for call in s.calls]


class Clock:
    """A hand-wound monotonic clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until true or the deadline; the assertion is on the result, not on time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def app_env() -> dict[str, str]:
    """The environment for an app run in a subprocess: it imports the meterline these tests import
    (this tree's, not the one an editable install may point at)."""
    root = str(Path(meterline.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


class Recorded:
    """A sync-mode client that keeps what it delivers: the recorder an integration under test writes to."""

    def __init__(self) -> None:
        self.transport = ScriptedTransport()
        self.client = meterline.Client("k", sync=True, transport=self.transport)

    def calls(self) -> list[dict[str, Any]]:
        delivered: list[dict[str, Any]] = self.transport.delivered()
        return delivered
