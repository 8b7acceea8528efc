"""Fixtures of the SDK's own tests (no database: they run beside the server's suite or alone)."""

from __future__ import annotations

import os
from collections.abc import Iterator

# LiteLLM reads its model price map from the internet at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
from provider_standin import Provider
from sdk_testkit import Sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    yield server
    server.close()
