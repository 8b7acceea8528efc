"""Load a project's :class:`~ledger.pricing.PriceBook` from the Django DB."""

from __future__ import annotations

from fractions import Fraction

from ledger.models import PriceOverride, TierMultiplier
from ledger.pricing import OverrideSpec, PriceBook


def load_price_book(project_id: int) -> PriceBook:
    overrides = [
        OverrideSpec(
            id=o.pk,
            provider=o.provider,
            model=o.model,
            effective_from=o.effective_from,
            input_per_mtok=o.input_per_mtok,
            output_per_mtok=o.output_per_mtok,
            cache_read_per_mtok=o.cache_read_per_mtok,
            cache_write_per_mtok=o.cache_write_per_mtok,
            reasoning_per_mtok=o.reasoning_per_mtok,
        )
        for o in PriceOverride.objects.filter(project_id=project_id)
    ]
    multipliers = {m.service_tier: Fraction(m.multiplier) for m in TierMultiplier.objects.filter(project_id=project_id)}
    return PriceBook(overrides, multipliers)
