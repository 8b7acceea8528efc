"""Compare: rate changes in percentage points, a warning on thin data, a significance test for rates."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from dashboards.compare import two_proportion_z
from dashboards.tests.conftest import call, ingest
from dashboards.tests.test_pages import RANGE, url
from tenancy.models import Project


def test_the_two_proportion_z_test() -> None:
    z, p = two_proportion_z(10, 100, 20, 100)  # type: ignore[misc]
    assert z == pytest.approx(1.980, abs=1e-3)
    assert p == pytest.approx(0.0477, abs=1e-4)
    z, p = two_proportion_z(50, 1000, 50, 1000)  # type: ignore[misc]
    assert (z, p) == (0.0, 1.0)
    assert two_proportion_z(0, 10, 0, 10) is None  # no variation: nothing to test
    assert two_proportion_z(1, 0, 1, 10) is None


@pytest.mark.django_db
def test_thin_data_is_flagged_and_rates_read_in_points(traffic: Project, member: Any) -> None:
    page = member("viewer").get(url(traffic, "compare/"), {**RANGE, "dim": "route_version", "a": "v1", "b": "v2"})
    html = page.content.decode()
    assert [s["side"] for s in page.context["too_few"]] == ["A", "B"]
    assert "too few to judge" in html
    rows = {r["metric"]: r for r in page.context["comparison"]}
    error = rows["Error rate"]
    assert error["delta_kind"] == "pp"
    assert f"{error['delta'] * 100:+.1f} pp" in html
    assert error["test"]["tested"]
    assert not error["test"]["significant"]
    assert error["verdict"] == ""  # not called worse on 7 calls against 3
    assert "two-proportion z-test" in html


@pytest.mark.django_db
def test_a_clear_difference_on_enough_calls_is_significant(api: APIClient, project: Project, member: Any) -> None:
    calls = [call(i, 0, 1, route_version="v1", status="error" if i % 20 == 0 else "ok") for i in range(200)]
    calls += [call(1000 + i, 0, 2, route_version="v2", status="error" if i % 4 == 0 else "ok") for i in range(200)]
    ingest(api, calls)
    page = member("viewer").get(url(project, "compare/"), {**RANGE, "dim": "route_version", "a": "v1", "b": "v2"})
    assert page.context["too_few"] == []
    error = {r["metric"]: r for r in page.context["comparison"]}["Error rate"]
    assert error["test"]["significant"]
    assert error["test"]["p"] < 0.001
    assert error["verdict"] == "worse"
    assert "+20.0 pp" in page.content.decode()
