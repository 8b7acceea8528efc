"""Keyset pagination of the /v1 lists: ties on the leading field, both directions, forged cursors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from alerts.models import AlertState, AlertStatus, Budget, Channel, Rule
from api.tests.crud import key_client
from tenancy.models import Project


def cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def pages(client: APIClient, url: str, limit: int) -> list[list[int]]:
    out, params = [], {"limit": limit}
    while True:
        page = client.get(url, params).json()
        out.append([row["id"] for row in page["data"]])
        if page["next"] is None:
            return out
        params = {"limit": limit, "cursor": page["next"]}


def test_budgets_page_in_name_order_across_ties(project: Project) -> None:
    names = ["b", "a", "b", "c", "b", "a", "b"]
    budgets = [Budget.objects.create(project=project, name=n, amount=Decimal(1)) for n in names]
    expected = [b.pk for b in sorted(budgets, key=lambda b: (b.name, b.pk))]
    client = key_client(project, "read")
    for limit in (1, 2, 3, 7, 100):
        got = pages(client, "/v1/budgets", limit)
        assert [pk for page in got for pk in page] == expected
        assert all(len(page) == limit for page in got[:-1])


def test_alerts_page_newest_first_across_equal_times(project: Project) -> None:
    budget = Budget.objects.create(project=project, name="b", amount=Decimal(10))
    rule = Rule.objects.create(budget=budget, kind="actual", thresholds=[50])
    base = datetime(2026, 10, 20, tzinfo=UTC)
    times = [base, base + timedelta(microseconds=1), base, base + timedelta(hours=1), base]
    alerts = [
        AlertState.objects.create(
            budget=budget,
            rule=rule,
            period_start=base,
            period_end=base + timedelta(days=1),
            threshold=Decimal(10 + i),
            status=AlertStatus.FIRED,
            spend=Decimal(1),
            amount=Decimal(10),
            fired_at=when,
        )
        for i, when in enumerate(times)
    ]
    expected = [a.pk for a in sorted(alerts, key=lambda a: (a.fired_at, a.pk), reverse=True)]
    client = key_client(project, "read")
    for limit in (1, 2, 4):
        assert [pk for page in pages(client, "/v1/alerts", limit) for pk in page] == expected
    # the filters still apply on every page
    first = client.get("/v1/alerts", {"limit": "1", "status": "superseded"}).json()
    assert first == {"data": [], "next": None}


def test_a_row_added_between_pages_does_not_shift_the_next_page(project: Project) -> None:
    made = [
        Channel.objects.create(project=project, kind="email", name=f"c{i}", config={"to": ["a@b.io"]}).pk for i in "12"
    ]
    client = key_client(project, "read")
    first = client.get("/v1/channels", {"limit": 1}).json()
    Channel.objects.create(project=project, kind="email", name="c3", config={"to": ["a@b.io"]})
    Channel.objects.filter(pk=made[0]).delete()  # deleting the row the cursor points after does not matter either
    rest = client.get("/v1/channels", {"limit": 1, "cursor": first["next"]}).json()
    assert [r["id"] for r in first["data"] + rest["data"]] == made


@pytest.mark.parametrize(
    ("url", "values"),
    [
        ("/v1/budgets", ["a\u0000b", 1]),
        ("/v1/budgets", ["a", "one"]),
        ("/v1/budgets", ["a", None]),
        ("/v1/budgets", [None, 1]),
        ("/v1/budgets", ["a", 1, 2]),
        ("/v1/alerts", ["yesterday", 1]),
        ("/v1/alerts", ["2026-02-30T00:00:00+00:00", 1]),
        ("/v1/alerts", [[1], 1]),
        ("/v1/channels", [{"pk": 1}]),
        ("/v1/channels", ["1e400"]),
    ],
)
def test_a_forged_cursor_is_400(project: Project, url: str, values: list[Any]) -> None:
    answer = key_client(project, "read").get(url, {"cursor": cursor(values)})
    assert answer.status_code == 400, answer.content
    assert "cursor is not valid" in answer.json()["detail"]


@pytest.mark.parametrize("token", ["!!!", "WyJh", "x" * 5000, base64.urlsafe_b64encode(b"[" * 3000).decode()])
def test_a_cursor_that_does_not_decode_is_400(project: Project, token: str) -> None:
    answer = key_client(project, "read").get("/v1/budgets", {"cursor": token})
    assert answer.status_code == 400
    assert "cursor is not valid" in answer.json()["detail"]


def test_an_id_beyond_any_row_pages_to_the_end(project: Project) -> None:
    Channel.objects.create(project=project, kind="email", name="c", config={"to": ["a@b.io"]})
    answer = key_client(project, "read").get("/v1/channels", {"cursor": cursor([2**70])})
    assert answer.json() == {"data": [], "next": None}


def test_a_page_of_budgets_costs_the_same_queries_however_many_rules(
    project: Project, django_assert_max_num_queries: Any
) -> None:
    channel = Channel.objects.create(project=project, kind="email", name="c", config={"to": ["a@b.io"]})
    for i in range(6):
        budget = Budget.objects.create(project=project, name=f"b{i}", amount=Decimal(1))
        for kind in ("actual", "forecast"):
            Rule.objects.create(budget=budget, kind=kind, thresholds=[50]).channels.add(channel)
    client = key_client(project, "read")
    with django_assert_max_num_queries(5):  # the key, its last use, budgets, their rules, the rules' channels
        answer = client.get("/v1/budgets", {"limit": 5})
    assert len(answer.json()["data"]) == 5
