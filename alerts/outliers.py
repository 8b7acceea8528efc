"""Single calls far above their feature's usual size, read from the raw calls.

A feature's usual is the 95th percentile of its calls' tokens (input + output) over the 7 days
before the window; a call is an outlier when its tokens exceed ``factor`` times that. Features
with fewer than ``min_calls`` calls in the baseline are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from alerts import scope as scopes
from ledger.clickhouse.client import get_clickhouse

BASELINE = timedelta(days=7)
MIN_CALLS = 20


@dataclass(frozen=True)
class Outlier:
    feature: str
    event_id: str
    tokens: int
    usual: float  # the feature's p95 tokens


def token_outliers(
    project_id: int,
    scope: dict[str, Any],
    start: datetime,
    end: datetime,
    factor: Decimal,
    min_calls: int = MIN_CALLS,
) -> list[Outlier]:
    """The biggest outlier call of each feature in [start, end), biggest first."""
    params: dict[str, Any] = {
        "p": project_id,
        "bstart": start - BASELINE,
        "start": start,
        "end": end,
        "factor": float(factor),
        "min_calls": min_calls,
    }
    conditions = scopes.raw_conditions(scope, params)
    sql = f"""
        WITH baseline AS (
            SELECT feature, quantile(0.95)(input_tokens + output_tokens) AS usual, count() AS n
            FROM llm_calls FINAL
            WHERE project_id = {{p:UInt64}}
              AND timestamp >= {{bstart:DateTime64(3, 'UTC')}} AND timestamp < {{start:DateTime64(3, 'UTC')}}
              {conditions}
            GROUP BY feature HAVING n >= {{min_calls:UInt64}}
        )
        SELECT c.feature, argMax(c.event_id, c.input_tokens + c.output_tokens),
               max(c.input_tokens + c.output_tokens) AS tokens, any(b.usual)
        FROM (
            SELECT feature, event_id, input_tokens, output_tokens FROM llm_calls FINAL
            WHERE project_id = {{p:UInt64}}
              AND timestamp >= {{start:DateTime64(3, 'UTC')}} AND timestamp < {{end:DateTime64(3, 'UTC')}}
              {conditions}
        ) AS c
        INNER JOIN baseline AS b ON b.feature = c.feature
        WHERE c.input_tokens + c.output_tokens > b.usual * {{factor:Float64}}
        GROUP BY c.feature ORDER BY tokens DESC
    """
    rows = get_clickhouse().query(sql, parameters=params).result_rows
    return [Outlier(str(f), str(e), int(t), float(u)) for f, e, t, u in rows]
