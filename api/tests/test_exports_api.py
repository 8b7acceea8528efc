"""GET /v1/exports/focus: the answer's encodings, its totals against /v1/usage, access, isolation, bad input."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from rest_framework.test import APIClient

from api.tests.test_usage import call, ingest_and_roll, reader
from ingest.tests.helpers import post_calls
from tenancy.models import ApiKey, Membership, Organization, Project, Role

DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
FROM, TO = DAY.isoformat().replace("+00:00", "Z"), (DAY + timedelta(days=2)).isoformat().replace("+00:00", "Z")


def export(client: APIClient, **params: Any) -> Any:
    return client.get("/v1/exports/focus", {"from": FROM, "to": TO, **params})


def rows_of(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.django_db
def test_csv_is_streamed_and_sums_to_the_usage_total(api: APIClient, project: Project) -> None:
    ingest_and_roll(
        api,
        [call("a", 1, cache_read_tokens=300), call("b", 2, feature="search", customer_id="acme"),
         call("c", 26, model="gpt-4o", output_tokens=2000), call("d", 27, cost_usd="0.123456789012")],
    )  # fmt: skip
    response = export(reader(project))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="focus-{project.name}-{DAY:%Y%m%d}-{DAY + timedelta(days=2):%Y%m%d}.csv"'
    )
    rows = rows_of(response)
    usage = (
        reader(project)
        .get("/v1/usage", {"from": FROM, "to": TO, "granularity": "day", "metrics": "cost"})
        .json()["data"]
    )
    per_day = {u["bucket"]: Decimal(0) for u in usage}
    for r in rows:
        per_day[r["ChargePeriodStart"]] += Decimal(r["BilledCost"])
    assert {day: f"{cost:.12f}" for day, cost in per_day.items()} == {u["bucket"]: u["cost"] for u in usage}
    assert {r["x_Feature"] for r in rows} == {"chat", "search"}


@pytest.mark.django_db
def test_parquet_answers_the_same_rows(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1), call("b", 30, model="gpt-4o")])
    as_csv = rows_of(export(reader(project)))
    response = export(reader(project), format="parquet")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"].endswith('.parquet"')
    table = pq.read_table(io.BytesIO(response.content))
    assert [f"{v:.12f}" for v in table.column("BilledCost").to_pylist()] == [r["BilledCost"] for r in as_csv]
    assert table.column("SkuId").to_pylist() == [r["SkuId"] for r in as_csv]


@pytest.mark.django_db
def test_only_this_projects_calls_and_filters_narrow(api: APIClient, project: Project) -> None:
    other = Project.objects.create(organization=project.organization, name=f"{project.name}-other")
    other_ingest = APIClient()
    other_ingest.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other, ['ingest'])[1]}")
    assert post_calls(other_ingest, [call("x", 1, feature="theirs")]).status_code == 202
    ingest_and_roll(api, [call("a", 1), call("b", 2, feature="search")])
    assert {r["x_Feature"] for r in rows_of(export(reader(project)))} == {"chat", "search"}
    assert {r["x_Feature"] for r in rows_of(export(reader(other)))} == {"theirs"}
    assert {r["x_Feature"] for r in rows_of(export(reader(project), feature="search"))} == {"search"}


@pytest.mark.django_db
def test_a_signed_in_member_names_the_project(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", 1)])
    user = get_user_model().objects.create_user("finance", password="pw")
    Membership.objects.create(user=user, organization=project.organization, role=Role.FINANCE)
    client = APIClient()
    client.force_login(user)
    assert len(rows_of(export(client, project=str(project.pk)))) == 2
    stranger = get_user_model().objects.create_user("stranger", password="pw")
    Membership.objects.create(user=stranger, organization=Organization.objects.create(name="elsewhere"))
    client.force_login(stranger)
    assert export(client, project=str(project.pk)).status_code == 404


@pytest.mark.django_db
def test_the_read_scope_is_needed(project: Project) -> None:
    assert export(reader(project, ["ingest"])).status_code == 403
    assert export(APIClient()).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "xlsx"}, "format must be one of csv, parquet"),
        ({"from": ""}, "from is required"),
        ({"to": "yesterday"}, "to='yesterday' is not an RFC 3339"),
        ({"to": FROM}, "from must be before to"),
        ({"group_by": "model"}, "unknown parameter 'group_by'"),
        ({"granularity": "hour"}, "unknown parameter 'granularity'"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
        ({"from": "2026-01-01", "to": "2027-03-01"}, "at most 400 days"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(project: Project, params: dict[str, str], message: str) -> None:
    response = export(reader(project), **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert message in response.json()["detail"]


@pytest.mark.django_db
def test_clickhouse_down_is_a_503_before_any_row(project: Project) -> None:
    with override_settings(CLICKHOUSE_URL="http://127.0.0.1:1"):
        for fmt in ("csv", "parquet"):
            response = export(reader(project), format=fmt)
            assert response.status_code == 503
            assert response["Retry-After"].isdigit()
