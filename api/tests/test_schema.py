"""The OpenAPI schema generates without a warning, validates, and documents what the endpoints answer."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from alerts.serializers import MAX_RULES, MAX_SCOPE_TAGS, MAX_THRESHOLDS


@cache
def schema() -> dict[str, Any]:
    generated: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return generated


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), operation)
        for path, methods in schema()["paths"].items()
        for method, operation in methods.items()
    ]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``)."""
    while "$ref" in node:
        target: Any = schema()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_schema_generates_without_warnings_or_errors_and_validates(tmp_path: Path) -> None:
    GENERATOR_STATS.reset()  # what earlier generations in this process reported is not ours
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert not GENERATOR_STATS


def test_the_generated_schema_is_valid_openapi() -> None:
    validate_schema(schema())


# Answers that are files, not JSON (their errors are JSON all the same).
NOT_JSON = {("/v1/exports/focus", "200"): ["text/csv", "application/vnd.apache.parquet"]}


def test_every_operation_documents_the_errors_it_can_answer() -> None:
    assert (
        len(operations()) == 24
    )  # 17, /v1/exports/focus, /v1/limits (list, create, read, update, delete), /v1/capacity
    for path, method, operation in operations():
        responses = operation["responses"]
        documented = set(responses)
        assert {"400", "401", "403", "503"} <= documented, (method, path)
        names = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
        if any(where == "path" for where, _ in names) or ("query", "project") in names:
            assert "404" in documented, (method, path)
        if "requestBody" in operation:
            assert {"413", "415"} <= documented, (method, path)
            assert list(operation["requestBody"]["content"]) == ["application/json"], (method, path)
        outage = resolve(responses["503"])
        assert outage["headers"]["Retry-After"]["required"] is True, (method, path)
        for status, response in responses.items():
            if status != "204":
                expected = NOT_JSON.get((path, status), ["application/json"])
                assert list(resolve(response)["content"]) == expected, (method, path, status)


@pytest.mark.parametrize(
    ("path", "method", "status", "component"),
    [
        ("/v1/budgets", "POST", "201", "Budget"),
        ("/v1/channels", "POST", "201", "Channel"),
        ("/v1/budgets/{budget_id}", "GET", "200", "BudgetDetail"),
        ("/v1/budgets/{budget_id}", "PATCH", "200", "Budget"),
        ("/v1/channels/{channel_id}/test", "POST", "200", "ChannelTestResult"),
        ("/v1/feedback", "POST", "202", "FeedbackAccepted"),
        ("/v1/usage", "GET", "200", "Usage"),
        ("/v1/calls", "POST", "202", "CallsAccepted"),
    ],
)
def test_success_answers_are_documented_with_their_status_and_shape(
    path: str, method: str, status: str, component: str
) -> None:
    responses = schema()["paths"][path][method.lower()]["responses"]
    success = [code for code in responses if code.startswith("2")]
    assert success == [status]
    assert responses[status]["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{component}"}


def test_lists_page_their_items() -> None:
    for path, component in (("/v1/budgets", "Budget"), ("/v1/channels", "Channel"), ("/v1/alerts", "Alert")):
        page = resolve(schema()["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
        assert page["required"] == ["data", "next"]
        assert page["properties"]["data"]["items"] == {"$ref": f"#/components/schemas/{component}"}


def test_thresholds_are_numbers_in_requests_and_answers() -> None:
    components = schema()["components"]["schemas"]
    for name in ("Rule", "RuleRequest"):
        thresholds = components[name]["properties"]["thresholds"]
        assert thresholds["items"]["type"] == "number", name
        assert thresholds["maxItems"] == MAX_THRESHOLDS
    assert components["Alert"]["properties"]["threshold"]["type"] == "number"


def test_lists_a_request_may_hold_are_bounded() -> None:
    components = schema()["components"]["schemas"]
    for name in ("BudgetRequest", "PatchedBudgetRequest", "Budget"):
        assert components[name]["properties"]["rules"]["maxItems"] == MAX_RULES, name
    scope = components["BudgetRequest"]["properties"]["scope"]
    assert scope["properties"]["tag"]["maxProperties"] == MAX_SCOPE_TAGS
    assert scope["properties"]["feature"]["maxItems"] == 100
    assert components["RuleRequest"]["properties"]["channels"]["maxItems"] == 20
    email = components["ChannelRequest"]["properties"]["config"]["anyOf"][2]
    assert email["properties"]["to"]["maxItems"] == 20


def test_budget_answers_list_every_key_they_answer() -> None:
    budget = schema()["components"]["schemas"]["BudgetDetail"]
    assert set(budget["required"]) == set(budget["properties"])
    assert "current" in budget["properties"]
