"""What a client hears when something fails: a store outage is a 503 with ``Retry-After``, never a 500.

Two entry points share one classification:

- :func:`exception_handler` is DRF's ``EXCEPTION_HANDLER``: API views answer JSON, a store outage
  anywhere in the request (the API-key look-up, a session, a query) becomes ``503``, a body nested too
  deeply for the JSON parser a ``400``.
- :func:`server_error` is Django's ``handler500``, for everything else (pages, middleware, plain
  views): it looks at the exception being handled and answers 503 for an outage.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError as ClickHouseUnavailable
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseUnavailable
from django.http import HttpRequest, HttpResponse, JsonResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# Failures of reachability: the request was fine, a store was not there to answer it.
_OUTAGES: dict[type[BaseException], str] = {
    DatabaseUnavailable: "the database",
    DatabaseInterfaceError: "the database",
    ClickHouseUnavailable: "ClickHouse",
    RedisConnectionError: "the cache",
    RedisTimeoutError: "the cache",
}


def unavailable_store(exc: BaseException | None) -> str | None:
    """The store an exception says is unreachable (also through its causes), or None."""
    seen = 0
    while exc is not None and seen < 10:
        for kind, store in _OUTAGES.items():
            if isinstance(exc, kind):
                return store
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _outage_body(store: str) -> dict[str, str]:
    return {"detail": f"{store} is unavailable right now; retry after {RETRY_AFTER_SECONDS} seconds"}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    store = unavailable_store(exc)
    if store is not None:
        log.warning("answered 503: %s unavailable (%s)", store, type(exc).__name__)
        return Response(_outage_body(store), status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, RecursionError):  # DRF's JSON parser lets it through for a body like [[[[…
        return Response({"detail": "JSON parse error - the body is nested too deeply"}, status=400)
    return drf_exception_handler(exc, context)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: 503 with ``Retry-After`` when the failure was a store outage, else a plain 500."""
    store = unavailable_store(sys.exc_info()[1])
    api = request.path.startswith("/v1/")
    if store is not None:
        response: HttpResponse = (
            JsonResponse(_outage_body(store), status=503)
            if api
            else HttpResponse(
                f"<!doctype html><title>Unavailable · Meterline</title><h1>Temporarily unavailable</h1>"
                f"<p>{store.capitalize()} is not answering. This page will work again once it is back; "
                f"retry in a few seconds.</p>",
                status=503,
            )
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if api:
        return JsonResponse({"detail": "internal error; it has been logged"}, status=500)
    return HttpResponse("<!doctype html><title>Error · Meterline</title><h1>Something went wrong</h1>", status=500)
