"""The one seam for outbound HTTP (Slack and webhooks): timeouts, no redirects, errors without URLs.

Every alert leaves the process through :func:`post` or :func:`slack_webhook`; nothing here logs a
URL, a header or a body.
"""

from __future__ import annotations

import http.client
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from slack_sdk.webhook import WebhookClient

from alerts.transports import TransientError

USER_AGENT = "Meterline-Alerts/1.0"
# slack-sdk logs the webhook URL and body at DEBUG; its logger here only speaks up for itself.
_slack_log = logging.getLogger("alerts.transports.slack_sdk")
_slack_log.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Response:
    status: int
    body: str
    headers: dict[str, str]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx comes back as the answer: alerts are not re-posted elsewhere


_opener = urllib.request.build_opener(_NoRedirect)


def timeout() -> float:
    return float(settings.ALERTS_HTTP_TIMEOUT_SECONDS)


def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
    """POST ``body``; any HTTP status is an answer, a network failure a :class:`TransientError`."""
    # Channel URLs are http(s) only (alerts.channels validates them).
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers={"User-Agent": USER_AGENT, **headers}
    )
    try:
        with _opener.open(request, timeout=timeout()) as answer:
            return Response(answer.status, answer.read(4096).decode("utf-8", "replace"), dict(answer.headers.items()))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read(4096).decode("utf-8", "replace"), dict(exc.headers.items()))
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException: a malformed answer (BadStatusLine, IncompleteRead, …), not an OSError
        raise TransientError(f"could not reach the receiver ({_reason(exc)})") from None


def slack_webhook(url: str) -> WebhookClient:
    """A slack-sdk incoming-webhook client with our timeout and no hidden retries."""
    return WebhookClient(url, timeout=int(timeout()), logger=_slack_log, retry_handlers=[])


def send_slack(url: str, payload: dict[str, Any]) -> Response:
    try:
        answer = slack_webhook(url).send_dict(payload)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise TransientError(f"could not reach Slack ({_reason(exc)})") from None
    return Response(answer.status_code, str(answer.body or ""), dict(answer.headers or {}))


def _reason(exc: BaseException) -> str:
    """A failure's kind without its text (which may quote the URL)."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return type(exc.reason).__name__
    return type(exc).__name__


def retry_after(headers: dict[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
