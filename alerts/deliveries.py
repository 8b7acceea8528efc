"""Sending deliveries: claim with compare-and-set, send through the channel's transport, record.

A delivery row exists before anything is sent (status ``sending``, due at ``next_attempt_at``).
A worker claims it by moving ``next_attempt_at`` one lease ahead in a conditional UPDATE: only
the worker whose UPDATE matched sends, so two workers never send the same delivery. The outcome
is then written: ``sent``; or a transient failure due again after a capped exponential backoff
(``failed`` once the attempts run out); or a permanent failure, which never retries and, for a
dead webhook, disables the channel with the reason.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from alerts.message import from_alert, test_message
from alerts.models import Channel, Delivery, DeliveryStatus
from alerts.transports import DeliveryError, PermanentError, TransientError, transport_for
from ledger import telemetry

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: base * 2^(attempts-1), capped."""
    base, cap = settings.ALERTS_RETRY_BASE_SECONDS, settings.ALERTS_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def claim(delivery_id: int, now: datetime) -> bool:
    return (
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING, next_attempt_at__lte=now).update(
            next_attempt_at=now + LEASE, attempts=F("attempts") + 1
        )
        == 1
    )


def attempt(delivery_id: int, now: datetime | None = None) -> str | None:
    """Claim (at ``now``) and send one delivery. Returns "sent", "retry", "failed", or None if it was
    not ours, not due, or our lease ran out while sending (another worker owns the outcome then)."""
    now = now or timezone.now()
    if not claim(delivery_id, now):
        return None
    lease = now + LEASE
    delivery = Delivery.objects.select_related("channel", "alert__budget__project", "alert__rule").get(pk=delivery_id)
    # Every outcome is written only while the row still holds the lease this claim set.
    mine = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING, next_attempt_at=lease)
    channel = delivery.channel
    if not channel.enabled:
        return _record(
            mine, "failed", status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="channel disabled"
        )
    try:
        transport_for(channel).send(from_alert(delivery.alert), delivery_id)
    except TransientError as exc:
        return _transient(delivery, mine, now, str(exc), exc.retry_after)
    except PermanentError as exc:
        outcome = _record(
            mine, "failed", status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=str(exc)[:1000]
        )
        if exc.disable:
            channel.disable(str(exc))
            log.warning("channel %s disabled after a permanent failure", channel.pk)
        return outcome
    # Anything unforeseen is transient (under the attempts cap) and recorded; only the class is logged,
    # because a traceback could quote the webhook URL.
    except Exception as exc:  # noqa: BLE001
        log.warning("delivery %s: unexpected %s while sending", delivery_id, type(exc).__name__)
        return _transient(delivery, mine, now, safe_error(exc), None)
    return _record(
        mine, "sent", status=DeliveryStatus.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error=""
    )


def _record(mine: QuerySet[Delivery], outcome: str, **fields: object) -> str | None:
    if mine.update(**fields):
        telemetry.DELIVERY_ATTEMPTS.labels(outcome).inc()
        return outcome
    # The lease ran out (a hanging receiver) and another worker claimed the delivery: it owns the outcome.
    log.warning("a delivery's lease ran out while sending; its outcome %r was not recorded", outcome)
    return None


def _transient(
    delivery: Delivery, mine: QuerySet[Delivery], now: datetime, reason: str, retry_after: float | None
) -> str | None:
    if delivery.attempts >= settings.ALERTS_MAX_ATTEMPTS:
        log.warning("delivery %s failed after %s attempts", delivery.pk, delivery.attempts)
        fields: dict[str, object] = {"status": DeliveryStatus.FAILED, "next_attempt_at": None}
        return _record(mine, "failed", **fields, last_error=f"gave up: {reason}"[:1000])
    delay = backoff(delivery.attempts)
    if retry_after is not None:  # the receiver's Retry-After is a floor, within the cap
        delay = max(delay, timedelta(seconds=min(retry_after, settings.ALERTS_RETRY_MAX_SECONDS)))
    log.info("delivery %s: transient failure, retry in %ss", delivery.pk, int(delay.total_seconds()))
    return _record(mine, "retry", next_attempt_at=now + delay, last_error=reason[:1000])


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def safe_error(exc: BaseException) -> str:
    """An unexpected failure as ``ClassName: message``, with any URL in the message replaced."""
    text = " ".join(_URL.sub("<url>", str(exc)).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def due(now: datetime | None = None, limit: int = 200) -> list[int]:
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(status=DeliveryStatus.SENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def send_due(
    now: datetime | None = None, limit: int = 200, clock: Callable[[], datetime] | None = None
) -> dict[str, int]:
    """Attempt every delivery that is due at ``now`` (the clock is a parameter for tests).

    Each claim takes the time of its own attempt (``clock()``; else ``now`` advanced by the time
    spent so far; else the current time): after a receiver that hangs, the next claim's lease
    starts when it is taken, so no other worker can claim that delivery while it is being sent."""
    started = time.monotonic()

    def claim_time() -> datetime:
        if clock is not None:
            return clock()
        if now is None:
            return timezone.now()
        return now + timedelta(seconds=time.monotonic() - started)

    outcomes: dict[str, int] = {}
    for delivery_id in due(now, limit):
        outcome = attempt(delivery_id, claim_time())
        if outcome:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def send_test(channel: Channel) -> tuple[bool, str]:
    """Send a sample alert now; a permanent failure disables the channel like a real one would.

    The result names the outcome only ("sent", "receiver answered 500", "could not reach the
    receiver"): never the receiver's body, and one wording for every network failure."""
    try:
        transport_for(channel).send(test_message(channel), None)
    except PermanentError as exc:
        if exc.disable:
            channel.disable(str(exc))
        return False, str(exc)
    except DeliveryError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - only the class: its text could quote a URL or an answer
        log.warning("test send to channel %s: unexpected %s", channel.pk, type(exc).__name__)
        return False, f"could not send ({type(exc).__name__})"
    return True, "sent"


def utcnow() -> datetime:
    return datetime.now(UTC)
