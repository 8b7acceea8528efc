"""The shipper's counters: records sent, dropped (invalid ones apart too), retried and spooled."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger("meterline")
_MAX_KINDS = 256  # kinds of problem remembered (they are few: a field and a rule each)


@dataclass
class Counters:
    """Record counts since start (or since a fork, in a child). Safe to update from any thread."""

    sent: int = 0  # accepted by the server (202, not rejected)
    dropped: int = 0  # lost for good: queue full, invalid, oversize, refused by the server, spool full
    invalid: int = 0  # of the dropped, those refused as invalid (by the SDK's checks or the server's)
    retried: int = 0  # re-sent after a failed attempt (counted once per record per retry)
    spooled: int = 0  # written to the disk spool (they count as sent once replayed)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)

    def add(self, name: str, records: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + records)

    def drop_invalid(self, problem: str, records: int = 1, *, warn: bool = True) -> None:
        """Count ``records`` dropped as invalid; the first of each ``problem`` is a WARNING, later ones DEBUG.

        ``problem`` names the field and the rule, never a value (it is logged and kept as a key).
        """
        with self._lock:
            self.dropped += records
            self.invalid += records
            first = problem not in self._warned
            if first and len(self._warned) < _MAX_KINDS:
                self._warned.add(problem)
        if not warn:
            return
        if first:
            log.warning(
                "meterline: record dropped as invalid: %s "
                "(warned once for this problem; counts()['invalid'] counts every one)",
                problem,
            )
        else:
            log.debug("meterline: record dropped as invalid: %s", problem)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "sent": self.sent,
                "dropped": self.dropped,
                "invalid": self.invalid,
                "retried": self.retried,
                "spooled": self.spooled,
            }
