"""Helpers for ingest tests: post calls, drain, and read back what ClickHouse holds."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from ingest.drain import DrainResult, drain_until_empty
from ledger.clickhouse.client import get_clickhouse
from tenancy.models import Project


def post_calls(api: APIClient, calls: list[dict[str, Any]], **headers: str) -> Any:
    return api.post("/v1/calls", {"calls": calls}, format="json", headers=headers or None)


def drain() -> DrainResult:
    return drain_until_empty(deadline_seconds=30)


def raw_rows(project: Project, columns: str = "*", final: bool = True) -> list[dict[str, Any]]:
    result = get_clickhouse().query(
        f"SELECT {columns} FROM llm_calls {'FINAL' if final else ''} "
        "WHERE project_id = {p:UInt64} ORDER BY timestamp, event_id",
        parameters={"p": project.pk},
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def raw_count(project: Project, final: bool = False) -> int:
    return int(
        get_clickhouse().command(
            f"SELECT count() FROM llm_calls {'FINAL' if final else ''} WHERE project_id = {{p:UInt64}}",
            parameters={"p": project.pk},
        )
    )
