"""The consumer: takes captured records off the queue, builds their JSON, batches and ships them.

Batches close on a count, a byte size or an age, whichever comes first. ``step()`` does one round
of work without waiting, so tests drive it directly; ``run()`` is the daemon thread's loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from meterline.counters import Counters
from meterline.fields import RecordError, build, encode, overlay
from meterline.shipper import Shipper

log = logging.getLogger("meterline")

# What record() puts on the queue: (time_ns, attribute() defaults, the call's own fields).
Captured = tuple[int, Mapping[str, Any], dict[str, Any]]
_ENVELOPE_BYTES = len(b'{"calls":[]}')


class Consumer:
    def __init__(
        self,
        queue: deque[Captured | threading.Event],
        shipper: Shipper,
        counters: Counters,
        *,
        max_batch_records: int = 500,
        max_batch_bytes: int = 1_000_000,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        if not 1 <= max_batch_records <= 1000:
            raise ValueError("max_batch_records must be between 1 and 1000 (the server's limit per request)")
        if not 1024 <= max_batch_bytes <= 5 * 1024 * 1024:
            raise ValueError("max_batch_bytes must be between 1 KiB and 5 MiB (the server's limit per request)")
        self.queue = queue
        self.shipper = shipper
        self.counters = counters
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self._clock = clock
        self.defaults = defaults or {}  # the client's own, under each record's attribute() ones
        self._batch: list[bytes] = []
        self._bytes = _ENVELOPE_BYTES
        self._opened = 0.0  # clock reading when the open batch got its first record
        self.wake = threading.Event()

    def step(self) -> None:
        """Drain the queue into batches, ship full ones and an old partial one, replay the spool if due."""
        queue = self.queue
        while True:
            try:
                item = queue.popleft()
            except IndexError:
                break
            if type(item) is tuple:
                self.add(*item)
            else:  # a flush() marker: everything before it goes now
                self.ship()
                item.set()  # type: ignore[union-attr]
        if self._batch and self._clock() - self._opened >= self.flush_interval:
            self.ship()
        if self.shipper.replay_due():
            self.shipper.replay()

    def add(self, time_ns: int, defaults: Mapping[str, Any], fields: dict[str, Any]) -> None:
        """Build, check and encode one record into the open batch."""
        try:
            data = encode(build(overlay(self.defaults, defaults), fields, time_ns))
        except (RecordError, TypeError, ValueError) as exc:
            # The message names the field and the rule, never the value.
            self.counters.drop_invalid(exc.kind if isinstance(exc, RecordError) else type(exc).__name__)
            return
        size = len(data) + 1  # and a comma
        if size + _ENVELOPE_BYTES > self.max_batch_bytes:
            log.warning("meterline: record dropped: %d bytes is more than a batch may hold", len(data))
            self.counters.add("dropped", 1)
            return
        if self._bytes + size > self.max_batch_bytes:
            self.ship()
        if not self._batch:
            self._opened = self._clock()
        self._batch.append(data)
        self._bytes += size
        if len(self._batch) >= self.max_batch_records:
            self.ship()

    def ship(self) -> None:
        """Send the open batch now."""
        batch, self._batch, self._bytes = self._batch, [], _ENVELOPE_BYTES
        if not batch:
            return
        try:
            self.shipper.ship(batch)
        except Exception as exc:  # noqa: BLE001 (e.g. an unreadable spool: count the loss, keep the thread)
            log.error("meterline: %d record(s) dropped by an unexpected error (%s)", len(batch), type(exc).__name__)
            self.counters.add("dropped", len(batch))

    def next_wait(self) -> float:
        """Seconds until there is work by the clock alone (an open batch coming of age)."""
        if self._batch:
            return max(0.0, self._opened + self.flush_interval - self._clock())
        return self.flush_interval

    def run(self, stopping: threading.Event) -> None:
        """The daemon thread: wait for a wake-up or a batch's age, then step; until stopped and empty."""
        while True:
            self.wake.wait(self.next_wait())
            self.wake.clear()
            try:
                self.step()
            except Exception:  # never let the thread die: the queue would fill and drop everything
                log.exception("meterline: the consumer hit an unexpected error")
            if stopping.is_set() and not self.queue:
                self.ship()
                return
