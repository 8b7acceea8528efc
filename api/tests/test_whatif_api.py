"""GET /v1/whatif: the answer's shape and money, access, isolation, bad parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rest_framework.test import APIClient

from api.tests.test_usage import call, ingest_and_roll, reader
from tenancy.models import Organization, Project

DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
FROM, TO = DAY.isoformat().replace("+00:00", "Z"), (DAY + timedelta(days=1)).isoformat().replace("+00:00", "Z")


def get(client: APIClient, **params: Any) -> Any:
    return client.get("/v1/whatif", {"from": FROM, "to": TO, **params})


@pytest.mark.django_db
def test_whatif_answers_totals_and_rows_as_twelve_place_decimals(api: APIClient, project: Project) -> None:
    # gpt-4o-mini: 1000 × $0.15/M + 100 × $0.60/M = $0.00021 a call; gpt-4o: 1000 × $2.50/M + 100 × $10/M = $0.0035
    ingest_and_roll(api, [call("a", 1), call("b", 2, feature="search"), call("c", 3, feature="search", cache_hit=True)])
    response = get(reader(project), to_model="gpt-4o", group_by="feature")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "calls": 3, "actual_cost": "0.000420000000", "whatif_cost": "0.007000000000", "delta": "0.006580000000",
        "unpriced_calls": 0, "method": "aggregate",
        "data": [
            {"feature": "chat", "calls": 1, "actual_cost": "0.000210000000", "whatif_cost": "0.003500000000",
             "delta": "0.003290000000", "unpriced_calls": 0},
            {"feature": "search", "calls": 2, "actual_cost": "0.000210000000", "whatif_cost": "0.003500000000",
             "delta": "0.003290000000", "unpriced_calls": 0},
        ],
    }  # fmt: skip


@pytest.mark.django_db
def test_batch_tier_by_day_and_an_unknown_target(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1), call("b", 2)])
    body = get(reader(project), to_tier="batch", granularity="day").json()
    assert body["whatif_cost"] == "0.000210000000"  # gpt-4o-mini's batch price: half
    assert body["delta"] == "-0.000210000000"
    assert body["data"] == [
        {"bucket": FROM, "calls": 2, "actual_cost": "0.000420000000", "whatif_cost": "0.000210000000",
         "delta": "-0.000210000000", "unpriced_calls": 0},
    ]  # fmt: skip
    hours = get(reader(project), to_tier="batch", granularity="hour", tz="Europe/Paris").json()["data"]
    assert len(hours) == 24  # the day's hours, labelled in Paris time
    assert hours[0]["bucket"] == DAY.astimezone(ZoneInfo("Europe/Paris")).isoformat()
    assert [row["calls"] for row in hours[:4]] == [0, 1, 1, 0]
    unknown = get(reader(project), to_model="a-model-no-one-prices", to_provider="nowhere").json()
    assert unknown["unpriced_calls"] == 2
    assert unknown["whatif_cost"] == "0.000000000000"


@pytest.mark.django_db
def test_another_projects_calls_never_count_and_keys_need_read(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1)])
    other = Project.objects.create(organization=Organization.objects.create(name="wi-o"), name="wi-p")
    assert get(reader(other), to_tier="batch", project=str(project.pk)).json()["calls"] == 0
    assert get(reader(project, ["ingest"]), to_tier="batch").status_code == 403
    assert APIClient().get("/v1/whatif", {"from": FROM, "to": TO, "to_tier": "batch"}).status_code in (401, 403)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "to_model and/or to_tier"),
        ({"to_provider": "openai", "to_tier": "batch"}, "to_provider needs to_model"),
        ({"to_tier": "cheap"}, "to_tier must be one of"),
        ({"to_tier": "batch", "group_by": "colour"}, "unknown dimension 'colour'"),
        ({"to_tier": "batch", "metrics": "cost"}, "unknown parameter 'metrics'"),
        ({"to_tier": "batch", "colour": "red"}, "unknown parameter 'colour'"),
        ({"to_tier": "batch", "from": TO, "to": FROM}, "from must be before to"),
        ({"to_tier": "batch", "from": "yesterday"}, "is not an RFC 3339 datetime"),
        ({"to_model": "x" * 201}, "to_model is at most 200 characters"),
    ],
)
def test_bad_parameters_are_400_naming_them(project: Project, params: dict[str, str], message: str) -> None:
    response = get(reader(project), **params)
    assert response.status_code == 400
    assert message in response.json()["detail"]
