"""Single calls far above their feature's usual size, as the anomaly rules judge them.

A feature's usual is the 95th percentile of its calls' tokens (input + output) across the project
over the 7 days before the window; a call is an outlier when its tokens exceed ``factor`` times
that. Features with fewer than ``min_calls`` calls in the baseline are not judged. One read
(:func:`ledger.explore.token_outliers`) per project and window serves every anomaly budget; each
keeps the outliers its scope selects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from alerts.models import SCOPE_DIMENSIONS
from ledger import explore

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
    query = explore.OutlierQuery(
        project_id,
        start,
        end,
        factor,
        dimensions=SCOPE_DIMENSIONS,
        baseline=BASELINE,
        min_calls=min_calls,
        limit=MAX_CANDIDATES,
    )
    found = explore.token_outliers(query)
    return [Outlier(c.feature, c.event_id, c.tokens, c.usual, c.dimensions, c.tags) for c in found]
