"""A counter of the statements sent to ClickHouse, for tests that pin how many a read takes."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.clickhouse.client import ClickHouse


class Statements:
    """Counts the statements sent to ClickHouse while active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = ClickHouse._timed

        def counted(client: ClickHouse, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(client, *args, **kwargs)

        monkeypatch.setattr(ClickHouse, "_timed", counted)
