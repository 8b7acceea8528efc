"""Tell a drain that work is waiting, through the nudge the pipeline installs (``ops.pipeline``).

Dispatch is a nudge, never the record of the work: the outbox row is. If the nudge is lost
(broker down, process killed, none installed) the periodic sweep drains the batch anyway.
"""

from __future__ import annotations

from collections.abc import Callable

_nudge: Callable[[], None] | None = None


def set_nudge(nudge: Callable[[], None] | None) -> None:
    global _nudge
    _nudge = nudge


def batch_accepted() -> None:
    if _nudge is not None:
        _nudge()
