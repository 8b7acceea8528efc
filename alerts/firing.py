"""Exactly-once firing: the alert-state insert decides who fires, and its deliveries are saved with it.

For the thresholds a measurement crosses that have no row yet this period, the highest is inserted
as ``fired`` and the lower ones as ``superseded``, each in its own savepoint. A concurrent worker's
insert of the same (budget, period, rule, threshold, signal) hits the unique constraint and skips,
so however many workers evaluate at once, each threshold fires once. The fired row's deliveries are
written in the same transaction: an alert never exists without the rows that say where it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from alerts.models import AlertState, AlertStatus, Budget, Delivery, DeliveryStatus, Rule, Signal

LIVE = (AlertStatus.FIRED, AlertStatus.SUPERSEDED)


def fire(
    budget: Budget,
    rule: Rule,
    period: tuple[datetime, datetime],
    signal: str,
    crossed: list[Decimal],
    spend: Decimal,
    forecast: Decimal | None,
    details: Callable[[], dict[str, Any]],
    now: datetime,
    subject: str = "",
) -> list[int]:
    """Record the newly crossed thresholds; return the ids of the deliveries this call created.

    ``subject`` names what within the budget the alert is about (a capacity rule's provider/model):
    each subject fires its thresholds once per period on its own."""
    if not crossed:
        return []
    taken = set(
        AlertState.objects.filter(
            budget=budget, rule=rule, period_start=period[0], signal=signal, subject=subject, status__in=LIVE
        ).values_list("threshold", flat=True)
    )
    new = sorted((t for t in crossed if t not in taken), reverse=True)
    if not new:
        return []
    extra = details()  # only once there is something to fire
    created: list[int] = []
    channels = list(rule.channels.all())
    with transaction.atomic():
        for rank, threshold in enumerate(new):
            status = AlertStatus.FIRED if rank == 0 else AlertStatus.SUPERSEDED
            try:
                with transaction.atomic():  # a savepoint: a conflict undoes this row only
                    state = AlertState.objects.create(
                        budget=budget, rule=rule, period_start=period[0], period_end=period[1],
                        threshold=threshold, signal=signal, subject=subject, status=status, spend=spend,
                        forecast=forecast, amount=budget.amount, details=extra, fired_at=now,
                    )  # fmt: skip
            except IntegrityError:
                continue  # another worker recorded this threshold first: it owns the sending
            if status != AlertStatus.FIRED:
                continue
            for channel in channels:
                delivery = Delivery.objects.create(
                    alert=state,
                    channel=channel,
                    status=DeliveryStatus.SENDING if channel.enabled else DeliveryStatus.FAILED,
                    last_error="" if channel.enabled else f"channel disabled: {channel.disabled_reason}"[:1000],
                    next_attempt_at=now if channel.enabled else None,
                    created_at=now,
                )
                if channel.enabled:
                    created.append(delivery.pk)
    return created


def rearm_after_amount_change(budget: Budget, period_start: datetime, spend: Decimal, forecast: Decimal | None) -> int:
    """Re-arm this period's spend alerts that the budget's current amount no longer crosses.

    Only rows recorded under another amount are looked at: with an unchanged amount a fired
    threshold stays fired even if spend later drops (a correction must not re-send the alert). A row
    still crossed takes the current amount, so it is judged once per amount change, not every time.
    Call it with the budget row locked (``select_for_update``), as :func:`evaluate_one` does."""
    rearmed = 0
    states = (
        AlertState.objects.filter(budget=budget, period_start=period_start, signal=Signal.SPEND, status__in=LIVE)
        .exclude(amount=budget.amount)
        .select_related("rule")
    )
    for state in states:
        value = forecast if state.rule.kind == "forecast" else spend
        still_crossed = value is not None and value * 100 >= state.threshold * budget.amount
        row = AlertState.objects.filter(pk=state.pk, status=state.status)
        if still_crossed:
            row.update(amount=budget.amount)
        else:
            rearmed += row.update(status=AlertStatus.REARMED)
    return rearmed
