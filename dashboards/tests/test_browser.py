"""End to end in a real headless browser: Debian's Chromium driven by Playwright against a live server.

Signs in, opens every page, checks that each chart was drawn and that no console error occurred,
changes a filter through the form and sees the figures change, downloads a CSV and the FOCUS export
and checks them against ``/v1/usage``. Screenshots of every page (desktop and phone width) are saved under
``test-output/screenshots/`` (or ``$METERLINE_TEST_OUTPUT/screenshots``) for a person to look at.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from alerts.models import Budget
from dashboards.tests.conftest import DAY1, TODAY, TRAFFIC, ingest
from tenancy.models import ApiKey, Membership, Organization, Project

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("METERLINE_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))
SHOTS = OUTPUT / "screenshots"
PASSWORD = "correct-horse-e2e"
RANGE = f"from={DAY1.date().isoformat()}&to={TODAY.date().isoformat()}"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture(scope="session")
def _end_live_server_sessions(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """At the end of the run, before the test database is dropped, end the sessions the live
    server's threads left open (else the drop fails: pytest-django issue #429)."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def site(transactional_db: Any, ch: Any, _end_live_server_sessions: None) -> Project:
    project = Project.objects.create(organization=Organization.objects.create(name="e2e-org"), name="e2e")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['ingest'])[1]}")
    ingest(api, TRAFFIC)
    Budget.objects.create(project=project, name="monthly LLM spend", amount=Decimal("0.02"), period="month")
    user = get_user_model().objects.create_user("e2e-admin", password=PASSWORD)
    Membership.objects.create(user=user, organization=project.organization, role="admin")
    return project


def _open(page: Any, url: str, name: str, problems: list[str]) -> None:
    answer = page.goto(url)
    assert answer is not None, name
    assert answer.status == 200, (name, answer.status)
    expected = page.locator("script[data-chart]").count()
    if expected:
        # plotly marks each drawn chart with .main-svg inside the target; wait for all of them.
        page.wait_for_function(
            "n => document.querySelectorAll('.chart .main-svg').length >= n && "
            "document.querySelectorAll('.chart .plot-container').length >= n",
            arg=expected,
            timeout=15_000,
        )
        assert page.locator(".chart .plot-container").count() == expected, name
        assert page.locator(".chart .main-svg path, .chart .main-svg rect").count() > 0, name
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert not problems, (name, problems)


def test_every_page_renders_filters_change_numbers_and_csv_matches_the_api(
    browser: Any, live_server: Any, site: Project
) -> None:
    base = f"{live_server.url}/p/{site.pk}"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    # Sign in.
    page.goto(f"{live_server.url}/accounts/login/?next=/p/{site.pk}/%3F{RANGE.replace('&', '%26')}")
    page.fill("#id_username", "e2e-admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/?*")
    assert page.locator("[data-kpi=spend-in-range]").count() == 1

    pages = {
        "overview": f"{base}/?{RANGE}",
        "engineering": f"{base}/engineering/?{RANGE}",
        "compare": f"{base}/compare/?{RANGE}&dim=route_version&a=v1&b=v2",
        "customers": f"{base}/customers/?{RANGE}",
        "customer": f"{base}/customers/globex/?{RANGE}",
        "savings": f"{base}/savings/?{RANGE}",
        "savings-whatif": f"{base}/savings/?{RANGE}&to_provider=openai&to_model=gpt-4o",
        "calls": f"{base}/calls/?{RANGE}&order=latency",
        "call": f"{base}/calls/ev-4/",
        "budgets": f"{base}/budgets/",
        "budget-new": f"{base}/budgets/new",
        "channels": f"{base}/budgets/channels/",
        "settings-keys": f"{base}/settings/",
        "settings-members": f"{base}/settings/members/",
        "settings-prices": f"{base}/prices/",
    }
    for name, url in pages.items():
        _open(page, url, name, problems)
    assert page.context.cookies()  # still signed in

    # Change a filter through the form: the spend figure follows.
    _open(page, pages["overview"], "overview", problems)
    before = page.inner_text("[data-kpi=spend-in-range] .value")
    page.click("details[data-dim=feature] summary")
    page.check("input[name=feature][value=search]")
    page.click("h1")  # a click elsewhere closes the picker
    assert page.locator("details[data-dim=feature][open]").count() == 0
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**feature=search**")
    page.wait_for_selector("[data-kpi=spend-in-range]")
    after = page.inner_text("[data-kpi=spend-in-range] .value")
    assert after != before
    _open(page, page.url, "overview-filtered", problems)

    # Download the features CSV and check it against /v1/usage (same session, same range).
    _open(page, pages["overview"], "overview", problems)
    with page.expect_download() as download:
        page.click("a[data-export=features]")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    api = page.request.get(
        f"{live_server.url}/v1/usage",
        params={
            "project": str(site.pk),
            "from": DAY1.isoformat(),
            "to": (TODAY + timedelta(days=1)).isoformat(),
            "granularity": "total",
            "group_by": "feature",
            "metrics": "cost,calls",
        },
    )
    assert api.ok, api.text()
    expected = {r["feature"]: (r["cost"], r["calls"]) for r in api.json()["data"]}
    assert {r["feature"]: (r["cost"], int(r["calls"])) for r in rows} == expected
    assert sorted(expected) == ["chat", "compose", "search"]

    # Download FOCUS (CSV): the page's range as FOCUS rows, adding up to the range's spend.
    with page.expect_download() as focus_download:
        page.click("a[data-focus-download]")
    assert focus_download.value.suggested_filename.startswith("focus-e2e-")
    focus_rows = list(csv.DictReader(io.StringIO(Path(focus_download.value.path()).read_text())))
    total = page.request.get(
        f"{live_server.url}/v1/usage",
        params={"project": str(site.pk), "from": DAY1.isoformat(), "to": (TODAY + timedelta(days=1)).isoformat(),
                "granularity": "total", "metrics": "cost"},
    )  # fmt: skip
    assert f"{sum(Decimal(r['BilledCost']) for r in focus_rows):.12f}" == total.json()["data"][0]["cost"]
    assert {r["ServiceCategory"] for r in focus_rows} == {"AI and Machine Learning"}

    # A phone-width look at the main pages.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=context.storage_state())
    small = phone.new_page()
    small.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    for name in ("overview", "engineering", "compare"):
        _open(small, pages[name], f"{name}-phone", problems)
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, (name, width)  # nothing forces sideways scrolling of the page
    phone.close()
    context.close()
