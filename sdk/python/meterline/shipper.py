"""Send a batch: gzip, an ``Idempotency-Key`` per batch, retries, split on 413, and the spool.

Retries are for network failures, 5xx, 408 and 429 only, with capped exponential backoff and full
jitter, ``Retry-After`` being a floor. Any other 4xx drops the batch (counted, logged without its
content). A batch that cannot be sent goes to the spool when there is one, else it is dropped.
While the spool holds batches, new ones queue behind them so the server gets them oldest first.

With a spool, a network failure or timeout is not retried in place: the batch goes to the spool at
once and the shipper turns to spool-and-probe (new batches to disk, one spooled batch probing the
endpoint, backing off). A silent endpoint would otherwise hold the consumer for every try's
timeout and backoff while the bounded queue overflows. A server that answers (5xx, 408, 429) is
retried as before: it is up, and its ``Retry-After`` says when to come back.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from meterline.counters import Counters
from meterline.spool import Spool
from meterline.transport import Reply, Transport

log = logging.getLogger("meterline")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff: float = 0.5  # first delay, seconds
    max_backoff: float = 30.0
    max_retry_after: float = 300.0  # a floor from the server, but not an unbounded one
    timeout: float = 10.0  # per request


RETRYABLE = frozenset({408, 429})


def retryable(status: int) -> bool:
    return status in RETRYABLE or status >= 500


def envelope(records: list[bytes]) -> bytes:
    return b'{"calls":[' + b",".join(records) + b"]}"


class Shipper:
    """Sends batches through a :class:`Transport`; used by one thread at a time."""

    def __init__(
        self,
        transport: Transport,
        api_key: str,
        counters: Counters,
        policy: RetryPolicy | None = None,
        spool: Spool | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.transport = transport
        self._auth = f"Bearer {api_key}"
        self.counters = counters
        self.policy = policy or RetryPolicy()
        self.spool = spool
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (retry jitter, not a secret)
        self._next_probe = 0.0
        self._probe_failures = 0
        self.deadline: float | None = None  # set while shutting down: no waiting past it

    def interrupt(self) -> None:
        """Cut any backoff wait short (shutdown)."""
        self._stop.set()

    # -- one batch -----------------------------------------------------------------------------

    def ship(self, records: list[bytes]) -> None:
        """Deliver ``records`` (encoded JSON objects) once, or spool or drop them, counted."""
        if not records:
            return
        if self.spool is not None and self.spool.pending():
            self.replay()
            if self.spool.pending():
                self._to_spool(gzip.compress(envelope(records), 6), len(records), uuid.uuid4().hex)
                return
        self._send(records)

    def spool_now(self, records: list[bytes]) -> None:
        """Write ``records`` straight to the spool, sending nothing (the process is going away)."""
        if records:
            self._to_spool(gzip.compress(envelope(records), 6), len(records), uuid.uuid4().hex)

    def _send(self, records: list[bytes]) -> None:
        body = gzip.compress(envelope(records), 6)
        key = uuid.uuid4().hex
        outcome = self._deliver(body, key, len(records))
        if outcome == "too_large":
            if len(records) == 1:
                log.warning("meterline: the server refused one record as too large (413); dropped")
                self.counters.add("dropped", 1)
                return
            half = len(records) // 2
            self._send(records[:half])
            self._send(records[half:])
        elif outcome == "failed":
            self._give_up(body, key, len(records))

    def _deliver(self, body: bytes, key: str, count: int, retries: int | None = None) -> str:
        """Send with retries: 'done' (sent or dropped for good), 'too_large' or 'failed' (retryable)."""
        headers = {
            "Authorization": self._auth,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": key,
            "User-Agent": "meterline-python/0.1",
        }
        max_retries = self.policy.max_retries if retries is None else retries
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                reply = self.transport.post(body, headers, self._timeout())
            except OSError as exc:
                log.info("meterline: endpoint unreachable (%s)", type(exc).__name__)
                if self.spool is not None:
                    return "failed"  # to the spool now; the probe finds out when it is back
            else:
                if reply.status == 202:
                    self._accepted(reply, count)
                    return "done"
                if reply.status == 413:
                    return "too_large"
                if not retryable(reply.status):
                    self._refused(reply.status, count)
                    return "done"
                log.info("meterline: the server answered %s; will retry", reply.status)
                retry_after = reply.retry_after
            if attempt >= max_retries or self._stop.is_set():
                return "failed"  # shutting down: the spool (if any) keeps the batch
            delay = self._backoff(attempt, retry_after)
            if self.deadline is not None and self._clock() + delay > self.deadline:
                return "failed"
            attempt += 1
            self.counters.add("retried", count)
            self._sleep(delay)

    def _timeout(self) -> float:
        if self.deadline is None:
            return self.policy.timeout
        return max(0.1, min(self.policy.timeout, self.deadline - self._clock()))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.policy.max_backoff, self.policy.backoff * 2**attempt)
        delay = self._rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.policy.max_retry_after))
        return delay

    def _accepted(self, reply: Reply, count: int) -> None:
        try:
            answer = json.loads(reply.body)
            accepted = int(answer["accepted"])
            rejected = answer.get("rejected") or []
        except (ValueError, KeyError, TypeError):
            # A 202 means the batch is durable; an unreadable body does not change that.
            self.counters.add("sent", count)
            return
        self.counters.add("sent", accepted)
        for item in rejected:
            # Only the field names: the server's messages may quote the record (a tag key, say).
            errors = item.get("errors") if isinstance(item, dict) else None
            fields = sorted(map(str, errors)) if isinstance(errors, dict) else []
            self.counters.drop_invalid(f"refused by the server (fields: {', '.join(fields) or 'unnamed'})")

    def _refused(self, status: int, count: int) -> None:
        why = {401: "the API key is unknown or revoked", 403: "the API key lacks the ingest scope"}.get(status, "")
        log.error("meterline: the server refused a batch of %d record(s) with %s %s; dropped", count, status, why)
        self.counters.add("dropped", count)

    def _give_up(self, body: bytes, key: str, count: int) -> None:
        if self.spool is not None:
            self._to_spool(body, count, key)
            self._probe_later()
            return
        log.error("meterline: could not deliver %d record(s) after retries; dropped", count)
        self.counters.add("dropped", count)

    def _to_spool(self, body: bytes, count: int, key: str) -> None:
        if self.spool is None:
            raise RuntimeError("no spool configured")
        if self.spool.put(body, count, key):
            self.counters.add("spooled", count)
        else:
            log.error("meterline: the spool is full; %d record(s) dropped", count)
            self.counters.add("dropped", count)

    # -- the spool -----------------------------------------------------------------------------

    def _probe_later(self) -> None:
        """The endpoint is down: wait (backing off) before a spooled batch tries it again."""
        self._next_probe = self._clock() + self._backoff(self._probe_failures, None)
        self._probe_failures += 1

    def replay_due(self) -> bool:
        return self.spool is not None and self._clock() >= self._next_probe and bool(self.spool.pending())

    def replay(self) -> None:
        """Send spooled batches oldest first until one fails; then wait (with backoff) before the next probe."""
        if self.spool is None or self._clock() < self._next_probe:
            return
        for path in self.spool.pending():
            item = self.spool.claim(path)
            if item is None:
                continue
            try:
                body = item.read()
            except OSError:
                self.spool.release(item)
                return
            outcome = self._deliver(body, item.key, item.records, retries=0)
            if outcome == "failed":
                self.spool.release(item)
                self._probe_later()
                return
            if outcome == "too_large":
                # Spooled batches were sendable sizes; a lower server limit since then splits them.
                self.spool.remove(item)
                self._send(_records_of(body))
                continue
            self.spool.remove(item)
        self._probe_failures = 0


def _records_of(body: bytes) -> list[bytes]:
    calls = json.loads(gzip.decompress(body))["calls"]
    return [json.dumps(c, separators=(",", ":"), ensure_ascii=False).encode() for c in calls]
