"""Every list and string a request may carry is bounded: past the bound, a 400 naming the field; nothing stored.

And Django's own refusals (a body too large, too many fields, a path that names no endpoint) answer
JSON as the API does, not an HTML page.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from alerts.models import Budget, Channel
from alerts.serializers import MAX_RULE_CHANNELS, MAX_RULES, MAX_SCOPE_TAGS, MAX_THRESHOLDS
from api.usage import MAX_FILTER_VALUES, MAX_VALUE_LENGTH
from tenancy.models import ApiKey, Project


@pytest.fixture
def admin(project: Project) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read', 'admin'])[1]}")
    return client


def budget(**extra: Any) -> dict[str, Any]:
    return {"name": "b", "amount_usd": "10", **extra}


def rules(n: int, **rule: Any) -> list[dict[str, Any]]:
    return [{"kind": "actual", "thresholds": [50], **rule} for _ in range(n)]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (budget(rules=rules(MAX_RULES + 1)), "rules", f"no more than {MAX_RULES} elements"),
        (budget(rules=rules(1, thresholds=list(range(1, MAX_THRESHOLDS + 2)))), "rules", "no more than 10"),
        (budget(rules=rules(1, channels=list(range(1, MAX_RULE_CHANNELS + 2)))), "rules", "no more than 20"),
        (
            budget(scope={"tag": {f"k{i}": ["v"] for i in range(MAX_SCOPE_TAGS + 1)}}),
            "scope",
            f"more than {MAX_SCOPE_TAGS} tag keys",
        ),
        (budget(scope={"feature": [f"f{i}" for i in range(101)]}), "scope", "more than 100 values"),
        (budget(scope={"tag": {"team": [f"t{i}" for i in range(101)]}}), "scope", "more than 100 values"),
        (budget(scope={"feature": ["x" * 201]}), "scope", "1 to 200 characters"),
        (budget(name="x" * 201), "name", "no more than 200 characters"),
        (budget(timezone="x" * 65), "timezone", "no more than 64 characters"),
    ],
)
def test_a_budget_past_a_bound_is_400_naming_the_field(
    admin: APIClient, body: dict[str, Any], field: str, message: str
) -> None:
    answer = admin.post("/v1/budgets", body, format="json")
    assert answer.status_code == 400, answer.content
    assert message in str(answer.json()[field])
    assert not Budget.objects.exists()


def test_a_budget_at_the_bounds_is_stored(admin: APIClient) -> None:
    answer = admin.post(
        "/v1/budgets",
        budget(
            rules=rules(MAX_RULES, thresholds=list(range(10, 10 * MAX_THRESHOLDS + 1, 10))),
            scope={"tag": {f"k{i}": ["v"] for i in range(MAX_SCOPE_TAGS)}},
        ),
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert len(answer.json()["rules"]) == MAX_RULES
    assert answer.json()["rules"][0]["thresholds"] == list(range(10, 101, 10))  # numbers, as always


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"to": [f"a{i}@example.com" for i in range(21)]}, "1 to 20 email addresses"),
        ({"to": ["a@example.com"], "extra": "x"}, "not a email setting"),
    ],
)
def test_a_channel_past_a_bound_is_400_naming_the_field(admin: APIClient, config: dict[str, Any], message: str) -> None:
    answer = admin.post("/v1/channels", {"kind": "email", "name": "ops", "config": config}, format="json")
    assert answer.status_code == 400, answer.content
    assert message in str(answer.json()["config"])
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"feature": ",".join(f"f{i}" for i in range(MAX_FILTER_VALUES + 1))}, "feature lists more than 100 values"),
        ({"model": "x" * (MAX_VALUE_LENGTH + 1)}, "model values are at most 200 characters"),
        ({"group_by": ",".join(["model"] * 11)}, "group_by lists more than 10 values"),
        ({"metrics": ",".join(["cost"] * 200)}, "metrics lists more than"),
    ],
)
def test_usage_filters_past_a_bound_are_400(admin: APIClient, query: dict[str, str], message: str) -> None:
    answer = admin.get("/v1/usage", {"from": "2026-11-01", "to": "2026-11-02", **query})
    assert answer.status_code == 400, answer.content
    assert message in answer.json()["detail"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
@pytest.mark.parametrize("path", ["/v1/budgets", "/v1/channels", "/v1/feedback"])
def test_a_body_over_the_limit_is_a_json_413(project: Project, path: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['ingest', 'read', 'admin'])[1]}")
    answer = client.post(path, {"name": "x" * 4096}, format="json")
    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/json"
    assert "larger than 2048 bytes" in answer.json()["detail"]


def test_too_many_query_parameters_is_a_json_400(admin: APIClient) -> None:
    answer = admin.get("/v1/budgets?" + "&".join(f"p{i}=1" for i in range(1001)))
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/json"
    assert "more than 1000 query parameters" in answer.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/budgets/abc", "/v1/budgets/-1", "/v1/channels/1.5/test", "/v1/nothing"])
def test_a_path_naming_no_endpoint_is_a_json_404(admin: APIClient, path: str) -> None:
    for answer in (admin.get(path), admin.post(path, {}, format="json")):
        assert answer.status_code == 404
        assert answer["Content-Type"] == "application/json"
        assert "no such endpoint" in answer.json()["detail"]


def test_a_path_lacking_its_slash_is_still_redirected() -> None:
    answer = APIClient().get("/v1/schema?format=json")
    assert answer.status_code == 301
    assert answer["Location"] == "/v1/schema/?format=json"
