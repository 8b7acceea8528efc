"""The client: a bounded queue that ``record()`` appends to, and the consumer thread behind it.

``record()`` is on the app's hot path, so it does the least it can: check the field names, take
the clock and the current ``attribute()`` defaults, and append to a deque; a full queue counts a
drop instead of blocking. Everything else (merging, checks, JSON, event id) happens on the
consumer thread. After a fork the child gets a fresh queue and thread (the parent ships what it
had queued); at exit the queue is flushed within ``exit_timeout``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any

from meterline import context
from meterline.consumer import Captured, Consumer
from meterline.counters import Counters
from meterline.fields import FIELD_NAMES, RecordError, build, encode, overlay, unknown_fields
from meterline.shipper import RetryPolicy, Shipper
from meterline.spool import Spool
from meterline.transport import HttpTransport, Transport

log = logging.getLogger("meterline")
DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
_clients: weakref.WeakSet[Client] = weakref.WeakSet()


class Client:
    """Ships CallRecords to one Meterline project. Thread-safe; one per process is usual."""

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        *,
        sync: bool = False,
        max_queue: int = 10_000,
        max_batch_records: int = 500,
        max_batch_bytes: int = 1_000_000,
        flush_interval: float = 1.0,
        exit_timeout: float = 2.0,
        retry: RetryPolicy | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 64 * 1024 * 1024,
        transport: Transport | None = None,
        **defaults: Any,
    ) -> None:
        api_key = api_key or os.environ.get("METERLINE_API_KEY")
        if not api_key:
            raise ValueError("meterline: no API key: pass api_key= or set METERLINE_API_KEY")
        endpoint = endpoint or os.environ.get("METERLINE_ENDPOINT") or DEFAULT_ENDPOINT
        if max_queue < 1:
            raise ValueError("meterline: max_queue must be at least 1")
        self.sync = sync
        self.max_queue = max_queue
        self.exit_timeout = exit_timeout
        self.defaults = context.merged({}, defaults)
        self.counters = Counters()
        self._transport = transport or HttpTransport(endpoint)
        self._api_key = api_key
        self._retry = retry or RetryPolicy()
        self._spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._spool_max_bytes = spool_max_bytes
        self._batching = (max_batch_records, max_batch_bytes, flush_interval)
        self._closed = False
        self._setup()
        _clients.add(self)

    def _setup(self) -> None:
        """The per-process state: queue, shipper, consumer; made again in a forked child."""
        self._queue: deque[Captured | threading.Event] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        spool = Spool(self._spool_dir, self._spool_max_bytes) if self._spool_dir is not None else None
        self.shipper = Shipper(self._transport, self._api_key, self.counters, self._retry, spool)
        records, size, interval = self._batching
        self.consumer = Consumer(
            self._queue,
            self.shipper,
            self.counters,
            defaults=self.defaults,
            max_batch_records=records,
            max_batch_bytes=size,
            flush_interval=interval,
        )
        self._wake = self.consumer.wake
        self._wake_at = self.consumer.max_batch_records

    # -- the hot path --------------------------------------------------------------------------

    def record(self, **fields: Any) -> None:
        """Queue one CallRecord (fields: docs/contract.md); never blocks, never raises on a full queue."""
        self.put(fields)

    def put(self, fields: dict[str, Any]) -> None:
        """:meth:`record` with the fields as a dict the caller hands over (and no longer changes)."""
        if not fields.keys() <= FIELD_NAMES:
            raise unknown_fields(fields)
        if self.sync:
            self._record_now(fields)
            return
        queue = self._queue
        size = len(queue)
        if size >= self.max_queue:
            self.counters.add("dropped", 1)
            return
        queue.append((time.time_ns(), context.current.get(), fields))
        if self._thread is None:
            self._start()
        elif size + 1 >= self._wake_at:
            self._wake.set()

    def _record_now(self, fields: dict[str, Any]) -> None:
        # In sync mode a bad record raises here, in the caller, with the field's name.
        try:
            data = encode(build(overlay(self.defaults, context.current.get()), fields, time.time_ns()))
        except RecordError as exc:
            self.counters.drop_invalid(exc.kind, warn=False)  # the caller hears of it: no log needed
            raise
        with self._lock:
            self.shipper.ship([data])

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(
                target=self.consumer.run, args=(self._stopping,), name="meterline-consumer", daemon=True
            )
            thread.start()
            self._thread = thread

    # -- flush and shutdown --------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Ship everything recorded so far; True if it was sent (or spooled) within ``timeout`` seconds."""
        if self.sync:
            return True
        if self._thread is None:
            if not self._queue:
                return True
            self._start()
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        return done.wait(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout`` (default ``exit_timeout``), then stop the thread; later records are dropped."""
        timeout = self.exit_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self.shipper.deadline = deadline
        flushed = self.flush(timeout)
        self._closed = True
        self.max_queue = 0  # records after shutdown count as dropped
        self._stopping.set()
        self.shipper.interrupt()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._queue:
            self._keep_what_is_left()
        return flushed

    def _keep_what_is_left(self) -> None:
        """Records still queued at the deadline: into the spool when there is one (the next start
        replays them), else counted as dropped. The consumer thread is stuck or gone: it no longer
        reads the queue."""
        left = [item for item in self._queue if type(item) is tuple]
        self._queue.clear()
        if not left:
            return
        if self.shipper.spool is None:
            self.counters.add("dropped", len(left))  # lost for good: the process is going away
            log.warning("meterline: %d record(s) not sent before the exit deadline", len(left))
            return
        records = []
        for time_ns, defaults, fields in left:
            try:
                records.append(encode(build(overlay(self.defaults, defaults), fields, time_ns)))
            except RecordError as exc:  # the consumer would have dropped it too
                self.counters.drop_invalid(exc.kind)
            except (TypeError, ValueError) as exc:
                self.counters.drop_invalid(type(exc).__name__)
        for start in range(0, len(records), self.consumer.max_batch_records):
            self.shipper.spool_now(records[start : start + self.consumer.max_batch_records])
        log.warning("meterline: %d record(s) not sent before the exit deadline were spooled", len(records))

    def counts(self) -> dict[str, int]:
        """Records sent, dropped (``invalid``: those of them refused as invalid), retried, spooled, and still queued."""
        return {**self.counters.snapshot(), "queued": len(self._queue)}

    def _after_fork_in_child(self) -> None:
        # The parent ships what it had queued; keeping it here would send it twice, each copy with
        # its own event id. The parent's connection and thread are not ours either.
        self.counters = Counters()
        self._transport.reset()
        self._setup()


def _after_fork() -> None:
    for client in list(_clients):
        client._after_fork_in_child()


def _at_exit() -> None:
    for client in list(_clients):
        if not client._closed and not client.sync:
            client.shutdown()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)
