"""Meterline: ship every LLM call your app makes, one line in the app, nothing lost, nothing slowed.

import meterline
meterline.init(api_key="ml_...", endpoint="https://meterline.example.com", environment="prod")
with meterline.attribute(feature="chat", customer_id="acme"):
    meterline.record(provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300)
"""

from __future__ import annotations

import logging
from typing import Any

from meterline.client import Client
from meterline.context import attribute
from meterline.counters import Counters
from meterline.fields import FIELD_NAMES, RecordError
from meterline.shipper import RetryPolicy
from meterline.transport import HttpTransport, Reply, Transport

__all__ = [
    "FIELD_NAMES",
    "Client",
    "Counters",
    "HttpTransport",
    "RecordError",
    "Reply",
    "RetryPolicy",
    "Transport",
    "attribute",
    "counts",
    "flush",
    "get_client",
    "init",
    "record",
    "shutdown",
]
__version__ = "0.1.0"

# No handler of our own, not even a NullHandler: the "meterline" logger propagates to the app's
# logging, and where the app configured none, Python's last-resort handler prints WARNING and above
# to stderr. A dropped record must not go unseen (an app can still silence the logger).
_client: Client | None = None
_warned = False


def init(api_key: str | None = None, endpoint: str | None = None, **options: Any) -> Client:
    """Start the process-wide client (``METERLINE_API_KEY`` / ``METERLINE_ENDPOINT`` by default).

    Keyword options are :class:`Client`'s (``sync``, ``spool_dir``, ``max_queue``…); any CallRecord
    field among them (``environment="prod"``) becomes a default for every record.
    """
    global _client
    previous, _client = _client, Client(api_key, endpoint, **options)
    if previous is not None:
        previous.shutdown()
    return _client


def get_client() -> Client | None:
    return _client


def record(**fields: Any) -> None:
    """Record one LLM call (CallRecord fields); a no-op with a warning before :func:`init`."""
    client = _client
    if client is None:
        _not_initialised()
        return
    client.put(fields)  # the kwargs dict is already ours: no second copy


def flush(timeout: float = 5.0) -> bool:
    """Ship what was recorded so far; True if done within ``timeout`` seconds."""
    return True if _client is None else _client.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush within ``timeout`` and stop the client (also done at exit)."""
    global _client
    client, _client = _client, None
    return True if client is None else client.shutdown(timeout)


def counts() -> dict[str, int]:
    """Records sent, dropped, invalid (of the dropped), retried, spooled and queued by the process-wide client."""
    return {} if _client is None else _client.counts()


def _not_initialised() -> None:
    global _warned
    if not _warned:
        _warned = True
        logging.getLogger("meterline").warning("meterline.record() called before meterline.init(); ignored")
