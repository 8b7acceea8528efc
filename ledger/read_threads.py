"""How many threads a read of the rollups may use: one for the small day tiers.

A day tier of the main dimensions holds a few dozen to a few hundred rows per project and day, so
even a year of it is read, merged (FINAL) and aggregated in milliseconds. Split over two threads,
such a read spends more on starting and joining the pipeline than it gains: measured on the
dashboard pages (bench data, 10 M calls), one thread took 7-16 % less CPU per page (the overview,
engineering, customers) and less wall-clock time on a busy machine. Every other read (the hour,
minute and customer tiers, the raw calls) keeps the engine's default.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger import quantiles

SMALL_TABLES = frozenset({"rollup_compact_day", "rollup_day", quantiles.DAY_TABLE})
ONE_THREAD: dict[str, Any] = {"max_threads": 1}


def read_settings(tables: Iterable[str]) -> dict[str, Any]:
    """The thread setting for a statement reading ``tables`` (their names, without FINAL)."""
    names = set(tables)
    return dict(ONE_THREAD) if names and names <= SMALL_TABLES else {}
