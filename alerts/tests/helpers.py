"""Alert test helpers: real calls into ClickHouse, budgets, and a local HTTP receiver."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rest_framework.test import APIClient

from alerts.models import Budget, Channel, Rule
from ingest.tests.helpers import drain, post_calls
from ledger.rollups import rollup_dirty
from tenancy.models import Project


def spend(api: APIClient, usd: str, when: datetime, **fields: Any) -> None:
    """Record one call that cost exactly ``usd`` at ``when``, then drain and roll it up."""
    record = {
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": usd,
        "timestamp": when.isoformat(),
        **fields,
    }
    answer = post_calls(api, [record])
    assert answer.status_code == 202, answer.json()
    assert answer.json()["accepted"] == 1, answer.json()
    drain()
    while rollup_dirty().has_more:
        pass


def budget(
    project: Project,
    amount: str,
    rules: list[tuple[str, list[int], list[Channel]]] | None = None,
    **fields: Any,
) -> Budget:
    made = Budget.objects.create(project=project, name=fields.pop("name", "monthly"), amount=Decimal(amount), **fields)
    for kind, thresholds, channels in rules or [("actual", [50, 80, 100], [])]:
        rule = Rule.objects.create(budget=made, kind=kind, thresholds=thresholds)
        rule.channels.set(channels)
    return made


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server that records every POST and answers from a script (default 200 ok)."""

    url: str
    requests: list[Received] = field(default_factory=list)
    # answers in order: (status, text) or (status, text, extra headers)
    script: list[tuple[Any, ...]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self) -> tuple[int, str, dict[str, str]]:
        with self.lock:
            scripted = self.script.pop(0) if self.script else (200, "ok")
        return scripted[0], scripted[1], scripted[2] if len(scripted) > 2 else {}

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)


@contextmanager
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            rec = state["r"]
            status, text, extra = rec.answer()
            with rec.arrived:
                rec.requests.append(Received(self.path, dict(self.headers.items()), body))
                rec.arrived.notify_all()
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        server.shutdown()
        server.server_close()


def documented_verify() -> Callable[..., bool]:
    """The webhook ``verify()`` exactly as docs/alerts.md gives it to receivers (executed from the doc)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify(" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/alerts.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]  # type: ignore[no-any-return]


def evaluate(project: Project, now: datetime) -> None:
    """Evaluate the project's budgets and run what waits for the commit (sending) right away."""
    from django.test import TestCase

    from alerts.evaluate import evaluate_projects
    from alerts.tasks import enqueue_deliveries

    with TestCase.captureOnCommitCallbacks(execute=True):
        enqueue_deliveries(evaluate_projects([project.pk], now=now).delivery_ids)


def record_calls(api: APIClient, records: list[dict[str, Any]]) -> None:
    """Record many calls at once (each a dict of CallRecord fields), then drain and roll up."""
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10}
    for i in range(0, len(records), 500):
        answer = post_calls(api, [{**base, **r} for r in records[i : i + 500]])
        assert answer.status_code == 202, answer.json()
        assert not answer.json()["rejected"], answer.json()
    drain()
    while rollup_dirty().has_more:
        pass
