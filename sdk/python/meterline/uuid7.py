"""UUIDv7 event ids (RFC 9562): 48 bits of Unix milliseconds, then randomness."""

from __future__ import annotations

import os


def uuid7(time_ns: int) -> str:
    """A UUIDv7 string for a record made at ``time_ns`` (nanoseconds since the epoch)."""
    ms = time_ns // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
