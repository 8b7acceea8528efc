"""One transport per channel kind. Each raises :class:`TransientError` (retry later) or
:class:`PermanentError` (never retry; ``disable`` also disables the channel, with the reason)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from alerts.message import AlertMessage
    from alerts.models import Channel


class DeliveryError(Exception):
    """A failed send; the message is safe to store and show (never a URL or a secret)."""


class TransientError(DeliveryError):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    def __init__(self, reason: str, disable: bool = True) -> None:
        super().__init__(reason)
        self.disable = disable


class Transport(Protocol):
    def send(self, message: AlertMessage, delivery_id: int | None = None) -> None: ...


def transport_for(channel: Channel) -> Transport:
    from alerts.transports.email import EmailTransport
    from alerts.transports.slack import SlackTransport
    from alerts.transports.webhook import WebhookTransport

    kinds: dict[str, type[EmailTransport] | type[SlackTransport] | type[WebhookTransport]] = {
        "slack": SlackTransport,
        "email": EmailTransport,
        "webhook": WebhookTransport,
    }
    return kinds[channel.kind](channel)
