"""The one seam for outbound HTTP (Slack and webhooks): vetted destinations, timeouts, no redirects.

Every alert leaves the process through :func:`post` or :func:`send_slack`. Each request resolves
the URL's host once, checks every address (:mod:`alerts.transports.destinations`), and connects to
those checked addresses only, while the Host header and TLS (SNI and certificate check) keep the
URL's host name: a DNS answer that changes between the check and the connection is never used.
Redirects are not followed (a 3xx is the answer) and no proxy from the environment is used.
Errors carry no URL, address, body or cause: a network failure reads the same whatever happened.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from slack_sdk.webhook import WebhookClient, WebhookResponse

from alerts.transports import PermanentError, TransientError
from alerts.transports.destinations import Destination, Refused, resolve

USER_AGENT = "Meterline-Alerts/1.0"
REFUSED = "destination refused: the URL's host is not a public address"
_NETWORK = (urllib.error.URLError, OSError, ValueError, http.client.HTTPException)

log = logging.getLogger(__name__)
# slack-sdk logs the webhook URL and body at DEBUG; its logger here only speaks up for itself.
_slack_log = logging.getLogger("alerts.transports.slack_sdk")
_slack_log.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Response:
    """An answer; ``body`` is for the transport's own reading, never for errors or logs."""

    status: int
    body: str
    headers: dict[str, str]


def timeout() -> float:
    return float(settings.ALERTS_HTTP_TIMEOUT_SECONDS)


def _open_socket(destination: Destination, wait: Any) -> socket.socket:
    """A TCP connection to the first vetted address that answers (never a fresh DNS lookup)."""
    last: OSError = OSError("no address")
    for family, sockaddr in destination.addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if isinstance(wait, int | float):
                sock.settimeout(wait)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, destination: Destination, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self.destination = destination

    def connect(self) -> None:
        self.sock = _open_socket(self.destination, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, destination: Destination, tls: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(host, context=tls, **kwargs)
        self.destination = destination
        self.tls = tls

    def connect(self) -> None:
        # SNI and the certificate check are on the URL's host name, the socket on the vetted address.
        self.sock = self.tls.wrap_socket(_open_socket(self.destination, self.timeout), server_hostname=self.host)


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, destination: Destination) -> None:
        super().__init__()
        self.destination = destination

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_PinnedHTTPConnection, destination=self.destination), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, destination: Destination) -> None:
        super().__init__()
        self.destination = destination

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = partial(_PinnedHTTPSConnection, destination=self.destination, tls=ssl.create_default_context())
        return self.do_open(connection, req)


def opener(destination: Destination) -> urllib.request.OpenerDirector:
    """http and https only, pinned to ``destination``; no proxy, no redirect handler (a 3xx is an answer)."""
    director = urllib.request.OpenerDirector()
    for handler in (
        _PinnedHTTPHandler(destination),
        _PinnedHTTPSHandler(destination),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        director.add_handler(handler)
    return director


def vet(url: str, receiver: str) -> Destination:
    """The checked destination of ``url``: :class:`PermanentError` when refused, else transient on DNS failure."""
    try:
        return resolve(url)
    except Refused:
        log.warning("alert HTTP: a channel's destination was refused (not a public address)")
        raise PermanentError(REFUSED) from None
    except OSError as exc:
        raise _unreachable(receiver, exc) from None


def _unreachable(receiver: str, exc: BaseException) -> TransientError:
    """One message for every network failure (refused, timed out, reset, TLS, DNS, not HTTP): no port map."""
    log.info("alert HTTP: %s unreachable (%s)", receiver, type(exc).__name__)
    return TransientError(f"could not reach {receiver}")


def _read(answer: Any) -> str:
    return bytes(answer.read(4096)).decode("utf-8", "replace")


def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
    """POST ``body``; any HTTP status is an answer, a network failure a :class:`TransientError`."""
    destination = vet(url, "the receiver")
    # Channel URLs are http(s) only (checked again by resolve); the opener has no other handler.
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers={"User-Agent": USER_AGENT, **headers}
    )
    try:
        with opener(destination).open(request, timeout=timeout()) as answer:
            return Response(answer.status, _read(answer), dict(answer.headers.items()))
    except urllib.error.HTTPError as exc:
        try:
            return Response(exc.code, _read(exc), dict(exc.headers.items()))
        finally:
            exc.close()
    except _NETWORK as exc:
        raise _unreachable("the receiver", exc) from None


class PinnedWebhookClient(WebhookClient):
    """slack-sdk's incoming-webhook client (its body, headers and response), sent through :func:`opener`."""

    def __init__(self, url: str, destination: Destination) -> None:
        super().__init__(url, timeout=int(timeout()), logger=_slack_log, retry_handlers=[])
        self.destination = destination

    def _perform_http_request_internal(self, url: str, req: urllib.request.Request) -> WebhookResponse:
        try:
            answer = opener(self.destination).open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                headers = dict(exc.headers.items())
                return WebhookResponse(url=url, status_code=exc.code, body=_read(exc), headers=headers)
            finally:
                exc.close()
        with answer:
            return WebhookResponse(
                url=url, status_code=answer.status, body=_read(answer), headers=dict(answer.headers.items())
            )


def slack_webhook(url: str) -> WebhookClient:
    """A slack-sdk incoming-webhook client for ``url``'s vetted destination, our timeout, no hidden retries."""
    return PinnedWebhookClient(url, vet(url, "Slack"))


def send_slack(url: str, payload: dict[str, Any]) -> Response:
    client = slack_webhook(url)
    try:
        answer = client.send_dict(payload)
    except _NETWORK as exc:
        raise _unreachable("Slack", exc) from None
    return Response(answer.status_code, str(answer.body or ""), dict(answer.headers or {}))


def retry_after(headers: dict[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
