"""The calls log, one call's page, and the trace / session / request pages (server-rendered)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from dashboards.tests.conftest import DAY1, call, ingest
from dashboards.tests.test_pages import RANGE, url
from tenancy.models import Project

RETRIED = [
    call(101, 1, 14, trace_id="tr-1", session_id="se-1", request_id="rq-1", status="error", error_type="timeout",
         output_tokens=0, latency_ms=30000.0, tags={"team": "growth", "tier": "gold"}, streamed=True),
    call(102, 1, 14, trace_id="tr-1", session_id="se-1", request_id="rq-1", attempt=2, latency_ms=1200.0),
    call(103, 1, 15, trace_id="tr-1", session_id="se-1", request_id="rq-2", customer_id="", feature=""),
    call(104, 2, 15, trace_id="tr-2", session_id="se-1", request_id="rq-3"),
]  # fmt: skip


def hrefs(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]*)"', html)]


@pytest.fixture
def retried(api: APIClient, traffic: Project) -> Project:
    ingest(api, RETRIED)
    return traffic


@pytest.mark.django_db
def test_the_log_is_newest_first_and_pages_by_cursor(api: APIClient, traffic: Project, member: Any) -> None:
    ingest(api, [call(200 + i, 0, 0, event_id=f"bulk-{i:02d}", timestamp=(DAY1 + timedelta(minutes=i)).isoformat())
                 for i in range(55)])  # fmt: skip
    client = member("engineer")
    first = client.get(url(traffic, "calls/"), RANGE)
    assert first.status_code == 200
    calls = first.context["calls"]
    assert len(calls) == 50
    when = [c["timestamp"] for c in calls]
    assert when == sorted(when, reverse=True)
    assert calls[0]["event_id"] == "ev-10"  # the newest of the fixture's traffic
    html = first.content.decode()
    assert not [h for h in hrefs(html) if h.startswith("??")]
    older = next(h for h in hrefs(html) if "after=" in h)
    assert "from=" in older  # the filters go along
    second = client.get(url(traffic, "calls/") + older)
    rest = [c["event_id"] for c in second.context["calls"]]
    assert len(rest) == 15
    assert set(rest).isdisjoint(c["event_id"] for c in calls)
    assert rest[-1] == "bulk-00"
    assert f'href="/p/{traffic.pk}/calls/bulk-00/"' in second.content.decode()
    assert 'rel="next"' not in second.content.decode()  # the last page
    bad = client.get(url(traffic, "calls/"), {**RANGE, "after": "%%%"})
    assert bad.status_code == 400
    assert "cursor" in bad.content.decode()


@pytest.mark.django_db
def test_the_log_filters_by_every_dimension_and_searches_ids(retried: Project, member: Any) -> None:
    client = member("finance")

    def shown(**params: Any) -> list[str]:
        answer = client.get(url(retried, "calls/"), {**RANGE, **params})
        assert answer.status_code == 200, answer.content[:300]
        return sorted(c["event_id"] for c in answer.context["calls"])

    assert shown(status="error") == ["ev-101", "ev-5"]
    assert shown(status="error", feature="search") == ["ev-5"]
    assert shown(traffic="eval") == ["ev-7"]
    assert shown(customer_id="globex", model="gpt-4o") == ["ev-10"]
    assert shown(q="tr-1") == ["ev-101", "ev-102", "ev-103"]
    assert shown(q="rq-1") == ["ev-101", "ev-102"]
    assert shown(q="se-1") == ["ev-101", "ev-102", "ev-103", "ev-104"]
    assert shown(q="ev-9") == ["ev-9"]
    assert shown(q="globex", feature="search") == ["ev-4"]
    assert shown(q="nothing-like-it") == []
    # the top views of the log honour the search too, and keep it in their links
    top = client.get(url(retried, "calls/"), {**RANGE, "q": "tr-1", "order": "latency"})
    assert next(c["event_id"] for c in top.context["calls"]) == "ev-101"
    assert any("order=cost" in h and "q=tr-1" in h for h in hrefs(top.content.decode()))


@pytest.mark.django_db
def test_a_call_page_reads_in_words_and_links_its_trace_session_and_customer(retried: Project, member: Any) -> None:
    html = member("finance").get(url(retried, "calls/ev-101/")).content.decode()
    assert "{'team'" not in html
    assert "True" not in html
    assert "False" not in html
    assert re.search(r'data-field="timestamp">\d{4}-\d\d-\d\d 14:00:00\.000 UTC<', html)
    assert 'data-field="streamed">yes<' in html
    assert 'data-field="cache_hit">no<' in html
    assert 'data-field="latency_ms">30.0 s<' in html  # seconds from 10 s
    assert re.search(r"<dt>team</dt><dd>growth</dd><dt>tier</dt><dd>gold</dd>", html)
    links = hrefs(html)
    assert f"/p/{retried.pk}/traces/tr-1/" in links
    assert f"/p/{retried.pk}/sessions/se-1/" in links
    assert f"/p/{retried.pk}/requests/rq-1/" in links
    assert f"/p/{retried.pk}/customers/acme/" in links
    # in another zone, the same instant with the zone named
    berlin = member("finance").get(url(retried, "calls/ev-101/"), {"tz": "Europe/Berlin"}).content.decode()
    assert re.search(r'data-field="timestamp">\d{4}-\d\d-\d\d 15:00:00\.000 CET \(Europe/Berlin\)<', berlin)
    blank = member("finance").get(url(retried, "calls/ev-103/")).content.decode()
    assert 'data-field="customer_id"><span class="muted">(none)</span>' in blank
    assert member("viewer").get(url(retried, "calls/ev-101/")).status_code == 403


@pytest.mark.django_db
def test_a_trace_totals_its_calls_and_shows_retries_as_such(retried: Project, member: Any) -> None:
    client = member("engineer")
    page = client.get(url(retried, "traces/tr-1/"))
    assert page.status_code == 200
    kpis = {k["label"]: k["value"] for k in page.context["kpis"]}
    assert kpis["Calls"] == 3
    assert kpis["Retries"] == 1
    assert kpis["Tokens"] == (1000 + 0) + (1000 + 200) + (1000 + 200)
    assert kpis["Time in calls"] == 30000.0 + 1200.0 + 900.0
    costs = {c["event_id"]: c["cost_usd"] for r in page.context["requests"] for c in r["attempts"]}
    assert kpis["Total cost"] == sum(costs.values())
    requests = [(r["request_id"], [c["event_id"] for c in r["attempts"]]) for r in page.context["requests"]]
    assert requests == [("rq-1", ["ev-101", "ev-102"]), ("rq-2", ["ev-103"])]
    html = page.content.decode()
    assert "retry · attempt 2" in html
    assert html.count('data-retried="rq-1"') == 2
    session = client.get(url(retried, "sessions/se-1/"))
    assert [c["event_id"] for r in session.context["requests"] for c in r["attempts"]] == [
        "ev-101", "ev-102", "ev-103", "ev-104",
    ]  # fmt: skip
    assert client.get(url(retried, "requests/rq-1/")).context["kpis"][0]["value"] == 2
    assert client.get(url(retried, "traces/no-such-trace/")).status_code == 404
    # the log links each call to its trace and session
    log = client.get(url(retried, "calls/"), {**RANGE, "q": "tr-2"}).content.decode()
    assert f'href="/p/{retried.pk}/traces/tr-2/"' in log
    assert f'href="/p/{retried.pk}/sessions/se-1/"' in log
