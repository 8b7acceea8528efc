"""GET /v1/usage and POST /v1/feedback: contract, access, isolation, bad parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger.feedback import sync_feedback
from ledger.rollups import rollup_dirty
from tenancy.models import ApiKey, Membership, Organization, Project

DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
FROM, TO = DAY.isoformat().replace("+00:00", "Z"), (DAY + timedelta(days=1)).isoformat().replace("+00:00", "Z")


def call(event_id: str, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id, "timestamp": (DAY + timedelta(hours=hour)).isoformat(), "provider": "openai",
        "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 100, "feature": "chat",
        "latency_ms": 500.0, **fields,
    }  # fmt: skip


def reader(project: Project, scopes: list[str] | None = None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, scopes or ['read'])[1]}")
    return client


def ingest_and_roll(api: APIClient, calls: list[dict[str, Any]]) -> None:
    if calls:
        assert post_calls(api, calls).status_code == 202
    drain()
    sync_feedback()
    rollup_dirty()


@pytest.mark.django_db
def test_usage_answers_long_format_rows_with_decimal_money(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1), call("b", 1, feature="search"), call("c", 5, feature="search")])
    response = reader(project).get(
        "/v1/usage", {"from": FROM, "to": TO, "granularity": "day", "group_by": "feature", "metrics": "cost,calls"}
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["truncated"] is False
    # gpt-4o-mini: 1000 × $0.15/M + 100 × $0.60/M = $0.00021 a call
    assert body["data"] == [
        {"bucket": FROM, "feature": "search", "cost": "0.000420000000", "calls": 2},
        {"bucket": FROM, "feature": "chat", "cost": "0.000210000000", "calls": 1},
    ]


@pytest.mark.django_db
def test_empty_buckets_come_back_as_zeros_and_limit_truncates(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1, customer_id="x"), call("b", 3, customer_id="y"), call("c", 3, customer_id="z")])
    hours = reader(project).get("/v1/usage", {"from": FROM, "to": TO, "granularity": "hour", "metrics": "calls"})
    data = hours.json()["data"]
    assert len(data) == 24
    assert [row["calls"] for row in data[:5]] == [0, 1, 0, 2, 0]
    top = (
        reader(project)
        .get("/v1/usage", {"from": FROM, "to": TO, "granularity": "total", "group_by": "customer_id", "limit": "2"})
        .json()
    )
    assert top["truncated"] is True
    assert len(top["data"]) == 2


@pytest.mark.django_db
def test_one_project_never_sees_another(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1)])
    other = Project.objects.create(organization=Organization.objects.create(name="other-o"), name="other-p")
    nothing = [{"cost": "0.000000000000", "calls": 0}]
    answer = reader(other).get("/v1/usage", {"from": FROM, "to": TO, "granularity": "total"}).json()
    assert answer["data"] == nothing
    # a key cannot pick another project, and a signed-in user only sees their organizations' projects
    query = {"from": FROM, "to": TO, "granularity": "total", "project": str(project.pk)}
    assert reader(other).get("/v1/usage", query).json()["data"] == nothing
    user = get_user_model().objects.create_user("eve", password="x")
    Membership.objects.create(user=user, organization=other.organization, role="finance")
    browser = APIClient()
    browser.force_login(user)
    assert browser.get("/v1/usage", {"from": FROM, "to": TO, "project": str(project.pk)}).status_code == 404
    assert browser.get("/v1/usage", {"from": FROM, "to": TO, "project": other.name}).status_code == 200


@pytest.mark.django_db
def test_members_read_their_project_by_session(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1)])
    user = get_user_model().objects.create_user("fin", password="x")
    Membership.objects.create(user=user, organization=project.organization, role="viewer")
    browser = APIClient()
    browser.force_login(user)
    rows = browser.get("/v1/usage", {"from": FROM, "to": TO, "project": project.name, "granularity": "total"})
    assert rows.json()["data"] == [{"cost": "0.000210000000", "calls": 1}]


@pytest.mark.django_db
def test_keys_need_the_read_scope(project: Project) -> None:
    response = reader(project, ["ingest"]).get("/v1/usage", {"from": FROM, "to": TO})
    assert response.status_code == 403
    assert "read" in response.json()["detail"]
    assert APIClient().get("/v1/usage", {"from": FROM, "to": TO}).status_code in (401, 403)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"group_by": "colour"}, "unknown dimension 'colour'"),
        ({"metrics": "cost,vibes"}, "unknown metric 'vibes'"),
        ({"from": TO, "to": FROM}, "from must be before to"),
        ({"from": "yesterday"}, "is not an RFC 3339 datetime"),
        ({"from": "2026-11-01T00:00:00"}, "needs a UTC offset"),
        ({"granularity": "minute"}, None),  # one day at minute granularity is fine
        (
            {"granularity": "minute", "from": "2026-01-01", "to": "2026-02-01"},
            "minute granularity covers at most 7 days",
        ),
        ({"granularity": "week"}, "granularity must be one of"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"limit": "0"}, "limit must be between"),
        ({"group-by": "feature"}, "unknown parameter 'group-by'"),
    ],
)
def test_bad_parameters_get_a_clear_400(project: Project, params: dict[str, str], message: str | None) -> None:
    query = {"from": FROM, "to": TO, **params}
    response = reader(project).get("/v1/usage", query)
    if message is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 400, response.json()
        assert message in response.json()["detail"]


@pytest.mark.django_db
def test_feedback_joins_its_call_whenever_either_arrives(api: APIClient, project: Project) -> None:
    # feedback for a call that has not arrived yet is kept
    assert api.post("/v1/feedback", {"event_id": "late", "score": 1.0}, format="json").status_code == 202
    ingest_and_roll(api, [call("early", 1), call("late", 2)])
    assert (
        api.post("/v1/feedback", {"event_id": "early", "score": 0.0, "comment": "wrong"}, format="json").status_code
        == 202
    )
    ingest_and_roll(api, [])
    answer = (
        reader(project)
        .get("/v1/usage", {"from": FROM, "to": TO, "granularity": "total", "metrics": "feedback_count,feedback_score"})
        .json()
    )
    assert answer["data"] == [{"feedback_count": 2, "feedback_score": 0.5}]
    bad = api.post("/v1/feedback", {"event_id": "x", "score": "great"}, format="json")
    assert bad.status_code == 400
    assert "score" in bad.json()


@pytest.mark.django_db
def test_bounds_with_a_non_utc_offset_mean_that_instant(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1), call("b", 20), call("c", 23)])
    # D 00:00+05:00 .. D+1 00:00+05:00 is D-1 19:00Z .. D 19:00Z: only the 01:00Z call is inside
    start = (DAY.replace(tzinfo=None).isoformat()) + "+05:00"
    end = ((DAY + timedelta(days=1)).replace(tzinfo=None).isoformat()) + "+05:00"
    total = reader(project).get("/v1/usage", {"from": start, "to": end, "granularity": "total", "metrics": "calls"})
    assert total.json()["data"] == [{"calls": 1}]
    # a half-hour offset: 07:00+05:30 .. 11:00+05:30 is 01:30Z .. 05:30Z
    half = {"from": DAY.replace(tzinfo=None).isoformat()[:10] + "T07:00:00+05:30",
            "to": DAY.replace(tzinfo=None).isoformat()[:10] + "T11:00:00+05:30", "granularity": "total",
            "metrics": "calls"}  # fmt: skip
    ingest_and_roll(api, [call("d", 1, timestamp=(DAY + timedelta(hours=1, minutes=45)).isoformat()),
                          call("e", 5, timestamp=(DAY + timedelta(hours=5, minutes=45)).isoformat())])  # fmt: skip
    assert reader(project).get("/v1/usage", half).json()["data"] == [{"calls": 1}]


@pytest.mark.django_db
def test_a_total_from_the_middle_of_a_minute_keeps_that_minute(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1, timestamp=(DAY + timedelta(hours=1, seconds=45)).isoformat())])
    query = {"from": (DAY + timedelta(hours=1, seconds=30)).isoformat(), "to": (DAY + timedelta(hours=2)).isoformat(),
             "granularity": "total", "metrics": "calls"}  # fmt: skip
    assert reader(project).get("/v1/usage", query).json()["data"] == [{"calls": 1}]
    query["from"] = (DAY + timedelta(hours=1, seconds=50)).isoformat()
    assert reader(project).get("/v1/usage", query).json()["data"] == [{"calls": 0}]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-02-30"},
        {"from": "2026-02-30T00:00:00Z"},
        {"from": "2026-11-01T00:00:00+24:00"},
        {"limit": "²"},
        {"tz": "right/UTC"},
    ],
)
def test_impossible_values_are_400_not_500(project: Project, params: dict[str, str]) -> None:
    response = reader(project).get("/v1/usage", {"from": FROM, "to": TO, **params})
    assert response.status_code == 400, response.content


@pytest.mark.django_db
def test_a_project_parameter_of_odd_digits_is_404_not_500(project: Project) -> None:
    user = get_user_model().objects.create_user("odd", password="x")
    browser = APIClient()
    browser.force_login(user)
    assert browser.get("/v1/usage", {"from": FROM, "to": TO, "project": "²"}).status_code == 404


@pytest.mark.django_db
def test_a_range_older_than_the_chosen_table_keeps_is_refused_not_zero(project: Project) -> None:
    # customers by hour come from raw calls, which are kept CLICKHOUSE_RAW_TTL_DAYS
    old = {
        "from": "2010-01-01T00:00:00Z",
        "to": "2010-01-02T00:00:00Z",
        "granularity": "hour",
        "group_by": "customer_id",
    }
    response = reader(project).get("/v1/usage", old)
    assert response.status_code == 400
    assert "llm_calls, which keeps" in response.json()["detail"]
    # day rollups are kept for good
    old.update(granularity="day", group_by="feature")
    assert reader(project).get("/v1/usage", old).status_code == 200


@pytest.mark.django_db
def test_hourly_buckets_across_a_half_hour_dst_shift_lose_nothing(api: APIClient, project: Project) -> None:
    # Lord Howe Island moves from +10:30 to +11:00 on 2026-10-04: local hours start 30 minutes apart
    # from UTC hours on one side of the shift.
    stamps = ["2026-10-03T14:10:00Z", "2026-10-03T16:40:00Z", "2026-10-04T02:20:00Z", "2026-10-04T20:50:00Z"]
    ingest_and_roll(api, [call(f"lh{i}", 0, timestamp=ts) for i, ts in enumerate(stamps)])
    query = {"from": "2026-10-03T13:30:00Z", "to": "2026-10-05T13:00:00Z", "granularity": "hour",
             "tz": "Australia/Lord_Howe", "metrics": "calls"}  # fmt: skip
    data = reader(project).get("/v1/usage", query).json()["data"]
    assert sum(row["calls"] for row in data) == len(stamps)
    assert [row["bucket"] for row in data] == sorted(row["bucket"] for row in data)
