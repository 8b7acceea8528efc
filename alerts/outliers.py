"""Single calls far above their feature's usual size, read from the raw calls.

A feature's usual is the 95th percentile of its calls' tokens (input + output) across the project
over the 7 days before the window; a call is an outlier when its tokens exceed ``factor`` times
that. Features with fewer than ``min_calls`` calls in the baseline are not judged. One query per
project and window serves every anomaly budget; each keeps the outliers its scope selects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from alerts.models import SCOPE_DIMENSIONS
from ledger.clickhouse.client import get_clickhouse

BASELINE = timedelta(days=7)
MIN_CALLS = 20
MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class Outlier:
    feature: str
    event_id: str
    tokens: int
    usual: float  # the feature's p95 tokens
    dimensions: dict[str, str]
    tags: dict[str, str]

    def in_scope(self, scope: dict[str, Any]) -> bool:
        for key, values in scope.items():
            if key == "tag":
                if any(self.tags.get(tag) not in allowed for tag, allowed in values.items()):
                    return False
            elif self.dimensions.get(key) not in values:
                return False
        return True


def token_outliers(
    project_id: int, start: datetime, end: datetime, factor: Decimal, min_calls: int = MIN_CALLS
) -> list[Outlier]:
    """Calls in [start, end) above ``factor`` x their feature's usual tokens, biggest first."""
    dims = ", ".join(f"toString(c.{d})" for d in SCOPE_DIMENSIONS)
    sql = f"""
        WITH baseline AS (
            SELECT feature, quantile(0.95)(input_tokens + output_tokens) AS usual, count() AS n
            FROM llm_calls FINAL
            WHERE project_id = {{p:UInt64}}
              AND timestamp >= {{bstart:DateTime64(3, 'UTC')}} AND timestamp < {{start:DateTime64(3, 'UTC')}}
            GROUP BY feature HAVING n >= {{min_calls:UInt64}}
        )
        SELECT c.event_id, c.input_tokens + c.output_tokens AS tokens, b.usual, c.tags, {dims}
        FROM (
            SELECT * FROM llm_calls FINAL
            WHERE project_id = {{p:UInt64}}
              AND timestamp >= {{start:DateTime64(3, 'UTC')}} AND timestamp < {{end:DateTime64(3, 'UTC')}}
        ) AS c
        INNER JOIN baseline AS b ON b.feature = c.feature
        WHERE c.input_tokens + c.output_tokens > b.usual * {{factor:Float64}}
        ORDER BY tokens DESC LIMIT {MAX_CANDIDATES}
    """
    params = {"p": project_id, "bstart": start - BASELINE, "start": start, "end": end, "factor": float(factor),
              "min_calls": min_calls}  # fmt: skip
    out = []
    for event_id, tokens, usual, tags, *values in get_clickhouse().query(sql, parameters=params).result_rows:
        dimensions = dict(zip(SCOPE_DIMENSIONS, (str(v) for v in values), strict=True))
        out.append(Outlier(dimensions["feature"], str(event_id), int(tokens), float(usual), dimensions, dict(tags)))
    return out
