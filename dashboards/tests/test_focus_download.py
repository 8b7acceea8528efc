"""The overview's "Download FOCUS (CSV)" button: the page's range as FOCUS rows, for each role."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from django.http import StreamingHttpResponse
from django.test import Client, override_settings

from dashboards.tests.conftest import DAY1, TODAY
from dashboards.tests.test_pages import usage
from tenancy.models import Project

RANGE = {"from": DAY1.date().isoformat(), "to": TODAY.date().isoformat()}


def button_href(client: Client, project: Project, **params: str) -> str:
    page = client.get(f"/p/{project.pk}/", {**RANGE, **params})
    assert page.status_code == 200
    found = re.search(r'<a [^>]*href="([^"]+)"[^>]*data-focus-download[^>]*>Download FOCUS \(CSV\)</a>', page.text)
    assert found, "the overview has no FOCUS download button"
    return html.unescape(found.group(1))


def download(client: Client, href: str) -> list[dict[str, str]]:
    answer = client.get(href)
    assert answer.status_code == 200
    assert answer.streaming
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    assert answer["Content-Disposition"].startswith('attachment; filename="focus-')
    streamed = cast(StreamingHttpResponse, answer)
    return list(csv.DictReader(io.StringIO(b"".join(cast(Iterator[bytes], streamed.streaming_content)).decode())))


@pytest.mark.django_db
def test_the_button_downloads_the_pages_range_and_it_adds_up(traffic: Project, member: Any) -> None:
    client = member("finance")
    href = button_href(client, traffic)
    assert href.startswith(f"/p/{traffic.pk}/exports/focus.csv?")
    assert f"from={RANGE['from']}" in href
    assert f"to={RANGE['to']}" in href
    rows = download(client, href)
    total = usage(traffic, granularity="total")[0]["cost"]
    assert f"{sum(Decimal(r['BilledCost']) for r in rows):.12f}" == total
    assert {r["x_CustomerId"] for r in rows} >= {"acme", "globex"}
    assert {r["ChargePeriodStart"][:10] for r in rows} <= {
        (DAY1 + timedelta(days=d)).date().isoformat() for d in range(4)
    }


@pytest.mark.django_db
def test_the_pages_filters_narrow_the_download(traffic: Project, member: Any) -> None:
    client = member("finance")
    rows = download(client, button_href(client, traffic, feature="search"))
    assert {r["x_Feature"] for r in rows} == {"search"}
    total = usage(traffic, granularity="total", feature="search")[0]["cost"]
    assert f"{sum(Decimal(r['BilledCost']) for r in rows):.12f}" == total


@pytest.mark.django_db
def test_a_viewer_gets_no_customer_ids(traffic: Project, member: Any) -> None:
    client = member("viewer")
    rows = download(client, button_href(client, traffic))
    assert rows
    assert {r["x_CustomerId"] for r in rows} == {""}
    assert all("customer" not in r["Tags"] for r in rows)


@pytest.mark.django_db
def test_strangers_and_outages(traffic: Project, member: Any, outsider: Client) -> None:
    path = f"/p/{traffic.pk}/exports/focus.csv"
    assert outsider.get(path).status_code == 404
    assert Client().get(path).status_code == 302  # to the sign-in page
    client = member("finance")
    with override_settings(CLICKHOUSE_URL="http://127.0.0.1:1"):
        answer = Client(raise_request_exception=False)
        answer.force_login(client.user)
        down = answer.get(path, RANGE)
    assert down.status_code == 503
    assert down["Retry-After"].isdigit()
