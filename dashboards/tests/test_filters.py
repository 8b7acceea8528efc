"""The shared filter panel: date presets, the time-zone picker, the granularity choices."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.http import QueryDict

from dashboards.filters import GRANULARITY_CHOICES, parse_filters, preset_range
from dashboards.tests.test_pages import RANGE, url
from tenancy.models import Project


def test_presets_cover_calendar_days_in_the_zone() -> None:
    today = date(2026, 3, 10)
    assert preset_range("today", today) == (today, today)
    assert preset_range("7d", today) == (date(2026, 3, 4), today)
    assert preset_range("30d", today) == (date(2026, 2, 9), today)
    assert preset_range("this_month", today) == (date(2026, 3, 1), today)
    assert preset_range("last_month", today) == (date(2026, 2, 1), date(2026, 2, 28))
    assert preset_range("last_month", date(2026, 1, 3)) == (date(2025, 12, 1), date(2025, 12, 31))


def test_preset_links_keep_the_other_filters_and_mark_the_range_shown() -> None:
    f = parse_filters(QueryDict("from=2026-03-04&to=2026-03-10&tz=Asia/Tokyo&model=gpt-4o"), today=date(2026, 3, 10))
    presets = {p["name"]: p for p in f.presets({"stack": "model"}, today=date(2026, 3, 10))}
    assert [n for n, p in presets.items() if p["active"]] == ["7d"]
    last = QueryDict(presets["last_month"]["query"])
    assert (last["from"], last["to"], last["tz"], last["model"], last["stack"]) == (
        "2026-02-01", "2026-02-28", "Asia/Tokyo", "gpt-4o", "model",
    )  # fmt: skip
    assert "Asia/Tokyo" in f.zones()
    odd = parse_filters(QueryDict("tz=America/Argentina/Ushuaia"))
    assert odd.zones()[0] == "America/Argentina/Ushuaia"  # a zone typed into the address stays chosen


def test_minute_granularity_for_short_ranges_only() -> None:
    assert "minute" in GRANULARITY_CHOICES
    short = parse_filters(QueryDict("from=2026-03-09&to=2026-03-10&granularity=minute"))
    assert (short.bucket, short.errors) == ("minute", ())
    long = parse_filters(QueryDict("from=2026-03-01&to=2026-03-10&granularity=minute"))
    assert long.granularity == "auto"
    assert "at most 2 days" in long.errors[0]


@pytest.mark.django_db
def test_the_panel_offers_presets_zones_and_granularities(traffic: Project, member: Any) -> None:
    html = member("viewer").get(url(traffic, ""), {**RANGE, "granularity": "day"}).content.decode()
    for preset in ("today", "7d", "30d", "this_month", "last_month"):
        assert f'data-preset="{preset}"' in html
    assert '<select name="tz" data-tz>' in html
    assert '<option value="Europe/Berlin">' in html
    for g in ("auto", "minute", "hour", "day"):
        assert f'<option value="{g}"' in html
    assert '<option value="day" selected>' in html
    minute = member("viewer").get(url(traffic, ""), {"granularity": "minute", "from": RANGE["to"], "to": RANGE["to"]})
    assert minute.status_code == 200
    assert minute.context["filters"].bucket == "minute"
