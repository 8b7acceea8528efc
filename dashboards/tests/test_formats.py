"""Figures read the same way down a column: money to the cent from a dollar, latency in seconds
from 10 s, "(none)" for a dimension value a call left blank."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from dashboards.tables import Column, Table, column_format, number, rendered
from dashboards.tests.conftest import call, ingest
from dashboards.tests.test_pages import RANGE, url
from tenancy.models import Project


def test_money_takes_one_number_of_places_per_column() -> None:
    dollars = column_format("money", [Decimal("12.5"), Decimal("0.0421"), Decimal("0.000003"), Decimal(0)])
    assert [dollars(v) for v in (Decimal("12.5"), Decimal("0.0421"), Decimal("0.000003"), Decimal(0))] == [
        "$12.50", "$0.04", "<$0.01", "$0.00",
    ]  # fmt: skip
    cents = column_format("money", [Decimal("0.0421"), Decimal("0.0003")])
    assert [cents(Decimal("0.0421")), cents(Decimal("0.0003"))] == ["$0.0421", "$0.0003"]
    tiny = column_format("money", [Decimal("0.00004")])
    assert tiny(Decimal("0.00004")) == "$0.00004000"
    assert dollars(Decimal("-3")) == "-$3.00"
    assert dollars(None) == "–"


def test_latency_reads_in_seconds_when_the_column_reaches_ten_seconds() -> None:
    slow = column_format("ms", [900.0, 72000.0, None])
    assert [slow(900.0), slow(72000.0), slow(None)] == ["0.9 s", "72.0 s", "–"]
    fast = column_format("ms", [900.0, 2400.0])
    assert [fast(900.0), fast(2400.0)] == ["900 ms", "2,400 ms"]
    assert number(12500.0, "ms") == "12.5 s"


def test_blank_dimension_values_read_none() -> None:
    table = Table("t", "T", [Column("feature", "Feature"), Column("cost", "Cost", "money")],
                  [{"feature": "", "cost": Decimal("2")}, {"feature": "chat", "cost": Decimal("0.5")}])  # fmt: skip
    cells = [[c["text"] for c in row] for row in rendered(table)["rows"]]
    assert cells == [["(none)", "$2.00"], ["chat", "$0.50"]]


@pytest.mark.django_db
def test_the_overview_names_blank_features_none(api: APIClient, traffic: Project, member: Any) -> None:
    ingest(api, [call(300, 1, 3, feature="")])
    html = member("finance").get(url(traffic, ""), RANGE).content.decode()
    assert "<td>(none)</td>" in html
