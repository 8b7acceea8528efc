"""Every /v1 operation answers as its OpenAPI schema says: status codes, media types, headers and bodies.

schemathesis draws requests from the schema the app serves (valid ones, and ones that break it) and
sends them through real WSGI with a valid API key of a project that holds a budget, a channel and a
fired alert with a delivery, so the lists and the detail pages answer real bodies; a path id is
either drawn or the id of that real object. Each example runs in a savepoint rolled back after it,
so every example sees the same project. POST /v1/calls has its own fuzz (``test_fuzz.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import GenerationMode

from alerts.models import AlertState, AlertStatus, Budget, Channel, Delivery, DeliveryStatus, Rule
from api.tests.fuzzing import CHECKS, FUZZ, api_schema
from ingest.tests.helpers import drain, post_calls
from ledger.models import Feedback, RateLimit
from tenancy.models import ApiKey, Project

OPERATIONS = [
    ("/v1/alerts", "GET"),
    ("/v1/budgets", "GET"),
    ("/v1/budgets", "POST"),
    ("/v1/budgets/{budget_id}", "GET"),
    ("/v1/budgets/{budget_id}", "PATCH"),
    ("/v1/budgets/{budget_id}", "DELETE"),
    ("/v1/channels", "GET"),
    ("/v1/channels", "POST"),
    ("/v1/channels/{channel_id}", "GET"),
    ("/v1/channels/{channel_id}", "PATCH"),
    ("/v1/channels/{channel_id}", "DELETE"),
    ("/v1/channels/{channel_id}/test", "POST"),
    ("/v1/feedback", "POST"),
    ("/v1/usage", "GET"),
    ("/v1/whatif", "GET"),
    ("/v1/advice", "GET"),
    ("/v1/exports/focus", "GET"),
    ("/v1/capacity", "GET"),
    ("/v1/limits", "GET"),
    ("/v1/limits", "POST"),
    ("/v1/limits/{limit_id}", "GET"),
    ("/v1/limits/{limit_id}", "PATCH"),
    ("/v1/limits/{limit_id}", "DELETE"),
]
REPORTS = ("/v1/usage", "/v1/whatif", "/v1/advice", "/v1/exports/focus", "/v1/capacity")  # operations that read calls
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}


@dataclass(frozen=True)
class World:
    auth: dict[str, str]
    ids: dict[str, int]  # path parameter → the id of a real object of the project


@pytest.fixture
def world(project: Project, request: pytest.FixtureRequest) -> World:
    channel = Channel.objects.create(project=project, kind="email", name="ops", config={"to": ["ops@example.com"]})
    budget = Budget.objects.create(project=project, name="monthly", amount=Decimal(10), scope={"feature": ["chat"]})
    rule = Rule.objects.create(budget=budget, kind="actual", thresholds=[50, 80.5])
    rule.channels.add(channel)
    fired = datetime.now(UTC) - timedelta(hours=1)
    alert = AlertState.objects.create(
        budget=budget,
        rule=rule,
        period_start=fired - timedelta(days=3),
        period_end=fired + timedelta(days=27),
        threshold=Decimal("80.5"),
        status=AlertStatus.FIRED,
        spend=Decimal("8.05"),
        amount=Decimal(10),
        fired_at=fired,
        details={"top": [{"feature": "chat", "spend_usd": "8.05"}]},
    )
    Delivery.objects.create(alert=alert, channel=channel, status=DeliveryStatus.FAILED, attempts=2, last_error="x")
    Feedback.objects.create(project=project, event_id="e-1", score=1.0)
    limit = RateLimit.objects.create(project=project, provider="openai", model="gpt-4o", tpm=30_000, rpm=500)
    key = ApiKey.issue(project, ["ingest", "read", "admin"])[1]
    if request.node.callspec.params.get("path") in REPORTS:  # calls to report on (drains cost)
        client = APIClient(headers={"Authorization": f"Bearer {key}"})
        calls = [
            {"provider": "openai", "model": model, "feature": feature, "input_tokens": 1000, "output_tokens": 10}
            for model in ("gpt-4o", "gpt-4o-mini")
            for feature in ("chat", "search")
        ]
        assert post_calls(client, calls).status_code == 202
        assert drain().failed == 0
    return World(
        auth={"Authorization": f"Bearer {key}"},
        ids={"budget_id": budget.pk, "channel_id": channel.pk, "limit_id": limit.pk},
    )


def test_every_v1_operation_is_fuzzed() -> None:
    served = {(op.ok().path, op.ok().method.upper()) for op in api_schema().get_all_operations()}
    assert served - {("/v1/calls", "POST")} == set(OPERATIONS)


@pytest.mark.django_db
@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda mode: mode.value)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_answers_conform_to_the_schema(
    world: World, wsgi_in_test_transaction: None, path: str, method: str, mode: GenerationMode
) -> None:
    operation = api_schema()[path][method]

    @settings(FUZZ, max_examples=EXAMPLES[mode])
    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    def fuzz(case: Any, real: bool) -> None:
        if real and case.path_parameters:  # the real object rather than a drawn id
            case.path_parameters = {**case.path_parameters, **{k: world.ids[k] for k in case.path_parameters}}
        if real and path in REPORTS:  # the last day rather than drawn bounds, so most queries run
            now = datetime.now(UTC).replace(microsecond=0)
            case.query = {
                **(case.query or {}),
                "from": (now - timedelta(days=1)).isoformat(),
                "to": (now + timedelta(hours=1)).isoformat(),
            }
        savepoint = transaction.savepoint()
        try:
            response = case.call(headers=world.auth)
            case.validate_response(response, checks=CHECKS, headers=world.auth)
        finally:
            transaction.savepoint_rollback(savepoint)

    fuzz()
