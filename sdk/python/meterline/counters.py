"""The shipper's counters: records sent, dropped, retried and spooled."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Counters:
    """Record counts since start (or since a fork, in a child). Safe to update from any thread."""

    sent: int = 0  # accepted by the server (202, not rejected)
    dropped: int = 0  # lost for good: queue full, invalid, oversize, refused by the server, spool full
    retried: int = 0  # re-sent after a failed attempt (counted once per record per retry)
    spooled: int = 0  # written to the disk spool (they count as sent once replayed)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, records: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + records)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"sent": self.sent, "dropped": self.dropped, "retried": self.retried, "spooled": self.spooled}
