"""A bounded directory of unsent batches, replayed oldest first when the endpoint is back.

Each file is one batch exactly as it would have been sent (gzip JSON) and is named
``<time_ns>-<records>-<idempotency key>.batch``, so the replay carries the same
``Idempotency-Key`` and a batch the server did store before the connection broke is not stored
twice. Files are written under a temporary name and renamed, so a crash never leaves half a batch;
a process claims a file by renaming it, so processes sharing the directory never send it twice.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("meterline")
_SUFFIX = ".batch"
_seq = itertools.count()


@dataclass(frozen=True)
class Spooled:
    path: Path
    records: int
    key: str

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    """Batches on disk, at most ``max_bytes`` in all."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._recover_claims()

    def put(self, body: bytes, records: int, key: str) -> bool:
        """Keep a batch; False (nothing written) when the spool is full."""
        if self.size() + len(body) > self.max_bytes:
            return False
        name = f"{time.time_ns():020d}-{next(_seq):06d}-{records}-{key}{_SUFFIX}"
        tmp = self.directory / f".{name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.directory / name)
        except OSError as exc:
            log.warning("meterline: could not write to the spool (%s)", type(exc).__name__)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        return True

    def pending(self) -> list[Path]:
        """The unclaimed batches, oldest first."""
        try:
            names = sorted(p for p in os.listdir(self.directory) if p.endswith(_SUFFIX))
        except FileNotFoundError:
            return []
        return [self.directory / name for name in names]

    def claim(self, path: Path) -> Spooled | None:
        """Take a batch for sending; None if another process took it first."""
        claimed = path.with_name(f"{path.name}.{os.getpid()}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        _, _, records, key = path.name[: -len(_SUFFIX)].split("-", 3)
        return Spooled(claimed, int(records), key)

    def release(self, item: Spooled) -> None:
        """Give a claimed batch back (it could not be sent yet)."""
        original = item.path.with_name(item.path.name.rsplit(".", 1)[0])
        os.rename(item.path, original)

    def remove(self, item: Spooled) -> None:
        with contextlib.suppress(FileNotFoundError):
            item.path.unlink()

    def size(self) -> int:
        total = 0
        for entry in os.scandir(self.directory):
            with contextlib.suppress(FileNotFoundError):
                total += entry.stat().st_size
        return total

    def _recover_claims(self) -> None:
        """Batches claimed by a process that died before sending them go back to the queue."""
        for entry in os.scandir(self.directory):
            base, _, pid = entry.name.rpartition(".")
            if not base.endswith(_SUFFIX) or not pid.isdigit():
                continue
            if int(pid) != os.getpid() and _alive(int(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.rename(entry.path, self.directory / base)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
