"""Fixtures of the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections


@pytest.fixture
def wsgi_in_test_transaction() -> Iterator[None]:
    """Let requests through Django's WSGI handler run inside the test's transaction.

    The handler closes "old" connections when a request starts and ends, which inside a test
    transaction closes the test's own connection; Django's test client disconnects it the same way.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
