"""Generic signed webhook: a JSON body, ``Meterline-Signature: v1=<hex>`` = HMAC-SHA256(secret,
``timestamp + "." + body``), ``Meterline-Timestamp`` in Unix seconds. See docs/alerts.md."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from alerts.message import AlertMessage
from alerts.models import Channel
from alerts.transports import PermanentError, TransientError, http


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookTransport:
    def __init__(self, channel: Channel) -> None:
        self.url = str(channel.config["url"])
        self.secret = str(channel.config["secret"])

    def send(self, message: AlertMessage, delivery_id: int | None = None) -> None:
        body = json.dumps(message.as_json(delivery_id), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Meterline-Event": message.event,
            "Meterline-Timestamp": timestamp,
            "Meterline-Signature": sign(self.secret, timestamp, body),
        }
        if delivery_id is not None:
            headers["Meterline-Delivery"] = str(delivery_id)  # receivers de-duplicate on it
        answer = http.post(self.url, body, headers)
        if 200 <= answer.status < 300:
            return
        if answer.status == 410:
            raise PermanentError("receiver answered 410 Gone")
        if answer.status in (408, 425, 429) or answer.status >= 500:
            raise TransientError(f"receiver answered {answer.status}", http.retry_after(answer.headers))
        # Any other 4xx (or a redirect): the receiver refuses this message; resending it cannot help.
        raise PermanentError(f"receiver answered {answer.status}", disable=False)
