"""Rollup inserts write parts a FINAL read can take as they are (ledger.measures.ROLLUP_INSERT_SETTINGS).

A part written with ``optimize_on_insert`` is level 1: ClickHouse knows it holds no two rows with one key,
and a FINAL read of a partition holding only such a part skips the replacing merge. A level-0 part is
merged on every FINAL read (2.8x the time of a 30-day price-tier read on the benchmark's data)."""

from __future__ import annotations

import pytest

from ledger.clickhouse.client import get_clickhouse
from ledger.rollups import TIERS
from ledger.tests.test_advice import write
from tenancy.models import Project

PARTS = (
    "SELECT table, name, level FROM system.parts"
    " WHERE active AND database = currentDatabase() AND table IN {t:Array(String)}"
)


@pytest.mark.django_db
def test_every_part_a_rollup_writes_is_free_of_duplicate_keys(project: Project) -> None:
    tables = [tier.table for tier in TIERS]
    ch = get_clickhouse()
    before = {(t, n) for t, n, _ in ch.query(PARTS, parameters={"t": tables}).result_rows}
    # when: calls are written and rolled up
    write(project, [{"minute": m, "feature": f} for m in (1, 70, 200) for f in ("chat", "search")])
    written = [(t, n, lv) for t, n, lv in ch.query(PARTS, parameters={"t": tables}).result_rows if (t, n) not in before]
    # then: every tier got new parts, and none is level 0
    assert {t for t, _, _ in written} >= {"rollup_hour", "rollup_day", "rollup_price_hour", "rollup_customer_day"}
    assert [(t, n) for t, n, lv in written if lv == 0] == []
