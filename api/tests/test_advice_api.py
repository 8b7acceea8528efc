"""GET /v1/advice: the answer's shape and money, ranking, access, isolation, bad parameters."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from api.tests.test_usage import FROM, TO, call, ingest_and_roll, reader
from tenancy.models import Organization, Project


def get(client: APIClient, **params: Any) -> Any:
    return client.get("/v1/advice", {"from": FROM, "to": TO, **params})


@pytest.mark.django_db
def test_advice_ranks_recommendations_with_twelve_place_money_and_links(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [
        call("a", 1, attempt=2), call("b", 2, traffic="eval", feature="grader"),
        call("c", 3, traffic="eval", feature="grader", output_tokens=300),
    ])  # fmt: skip
    response = get(reader(project))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [(r["kind"], r["scope"], r["savings_usd"], r["monthly_savings_usd"]) for r in body["recommendations"]] == [
        ("eval_shadow", {"feature": "grader", "traffic": "eval"}, "0.000540000000", "0.016200000000"),
        ("batch", {"feature": "grader", "traffic": "eval,shadow"}, "0.000270000000", "0.008100000000"),
        ("retries", {"feature": "chat", "model": "gpt-4o-mini"}, "0.000210000000", "0.006300000000"),
    ]
    batch = body["recommendations"][1]
    assert batch["title"]
    assert batch["evidence"]["actual_cost"] == "0.000540000000"
    assert batch["evidence"]["whatif"].startswith("/v1/whatif?from=")
    assert batch["evidence"]["dashboard"].startswith(f"/p/{project.pk}/engineering/?")
    # The dashboards take calendar days with an inclusive "to": a link they can read, over the same days.
    assert "T00" not in batch["evidence"]["dashboard"]
    assert "30 days / 1 days" in batch["evidence"]["monthly_method"]
    assert body["notes"] == []
    narrowed = get(reader(project), feature="chat").json()["recommendations"]
    assert [r["kind"] for r in narrowed] == ["retries"]


@pytest.mark.django_db
def test_one_project_never_sees_anothers_advice(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1, attempt=2)])
    other = Project.objects.create(organization=Organization.objects.create(name="other"), name="other")
    assert get(reader(other)).json() == {"recommendations": [], "notes": []}
    assert get(reader(project, ["ingest"])).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"granularity": "day"}, "unknown parameter 'granularity'"),
        ({"to_model": "gpt-4o"}, "unknown parameter 'to_model'"),
        ({"to": ""}, "to is required"),
        ({"colour": "x"}, "unknown parameter 'colour'"),
        ({"feature": "x" * 201}, "at most 200 characters"),
    ],
)
def test_bad_parameters_get_a_clear_400(project: Project, params: dict[str, str], message: str) -> None:
    response = get(reader(project), **params)
    assert response.status_code == 400
    assert message in response.json()["detail"]
