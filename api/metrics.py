"""GET /metrics: Prometheus exposition of the process counters and the store gauges.

Access (``docs/operations.md``, "Metrics"): with ``METRICS_TOKEN`` set, ``Authorization: Bearer
<token>`` is required (401 without it, 403 for a wrong one; compared in constant time). The client
address must be in ``METRICS_ALLOWED_NETWORKS`` (default: loopback only without a token, anywhere
with one). The address is ``REMOTE_ADDR``, or the entry a trusted proxy appended to
X-Forwarded-For when ``TRUST_X_FORWARDED_FOR``; a request that came through a proxy we do not
trust has no address we can check, so only a network list that admits anywhere lets it in.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from api.store_gauges import StoreCollector
from ledger import telemetry
from tenancy.signin import client_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address(request: HttpRequest) -> str | None:
    """The client's address, or None when an untrusted proxy stands between us."""
    if settings.TRUST_X_FORWARDED_FOR:
        return client_address(request)
    if any(request.META.get(header) for header in _PROXY_HEADERS):
        return None
    return str(request.META.get("REMOTE_ADDR", ""))


def address_allowed(request: HttpRequest) -> bool:
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    text = _address(request)
    if text is None:
        return any(n.prefixlen == 0 for n in networks)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


def token_matches(given: str, expected: str) -> bool:
    """Constant time: how much of a wrong token was right never shows in the answer's timing."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def refusal(request: HttpRequest) -> HttpResponse | None:
    """The answer for a scrape that may not see the metrics, or None to serve them."""
    if not address_allowed(request):
        return HttpResponse("metrics are not served to this address\n", status=403, content_type="text/plain")
    expected = settings.METRICS_TOKEN
    if expected is None:
        return None
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        answer = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        answer["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return answer
    if not token_matches(given.strip(), expected):
        return HttpResponse("wrong token\n", status=403, content_type="text/plain")
    return None


class Scrape:
    """What one scrape shows: this process's counters (or every process's, summed from the
    multiprocess directory) and the store gauges."""

    def __init__(self, multiproc_dir: str | None) -> None:
        self.sources: list[Collector] = [
            MultiProcessCollector(None, path=multiproc_dir) if multiproc_dir else telemetry.REGISTRY,
            StoreCollector(),
        ]

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def exposition(accept: str = "", multiproc_dir: str | None = None) -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept)
    return encoder(Scrape(multiproc_dir)), content_type


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = refusal(request)
    if refused is not None:
        refused["Cache-Control"] = "no-store"
        return refused
    body, content_type = exposition(request.META.get("HTTP_ACCEPT", ""), settings.METRICS_MULTIPROC_DIR)
    answer = HttpResponse(body, content_type=content_type)
    answer["Cache-Control"] = "no-store"
    return answer
