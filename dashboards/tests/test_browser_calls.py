"""In the real headless browser: the calls log, a call, its trace; the filter panel at 1280 and 390 px;
keyboard use and dark mode. Screenshots go beside the other browser tests' (test-output/screenshots/)."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from dashboards.tests.conftest import ingest
from dashboards.tests.test_browser import (  # noqa: F401 (fixtures)
    PASSWORD,
    RANGE,
    SHOTS,
    _end_live_server_sessions,
    browser,
    site,
)
from dashboards.tests.test_calls import RETRIED
from tenancy.models import ApiKey, Project


def _signed_in(chromium: Any, live_server: Any, **context: Any) -> tuple[Any, Any, list[str]]:
    ctx = chromium.new_context(**context)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "e2e-admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return ctx, page, problems


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_search_the_log_open_a_call_and_its_trace(browser: Any, live_server: Any, site: Project) -> None:  # noqa: F811
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(site, ['ingest'])[1]}")
    ingest(api, RETRIED)
    ctx, page, problems = _signed_in(browser, live_server, viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/p/{site.pk}/calls/?{RANGE}")
    rows = page.locator("table[data-table=calls] tbody tr")
    assert rows.count() == 14
    assert rows.first.get_attribute("data-event") == "ev-104"  # newest first (day 2, 15:00)
    _shot(page, "calls-log")
    # search by request id: the two attempts of one request
    page.fill("#calls-q", "rq-1")
    page.click("form[data-search] button[type=submit]")
    page.wait_for_url("**q=rq-1**")
    assert [rows.nth(i).get_attribute("data-event") for i in range(rows.count())] == ["ev-102", "ev-101"]
    assert "from=" in page.url  # the search kept the range
    # open the first attempt, then its trace
    page.click("tr[data-event=ev-101] a[data-call]")
    page.wait_for_url("**/calls/ev-101/")
    assert page.inner_text("[data-field=timestamp]").endswith(" UTC")
    assert page.inner_text("[data-field=streamed]") == "yes"
    assert page.locator("dl[data-tags] dt").all_inner_texts() == ["team", "tier"]
    _shot(page, "call-detail")
    page.click("a[data-link=trace]")
    page.wait_for_url("**/traces/tr-1/")
    assert page.locator("[data-kpi=retries] .value").inner_text() == "1"
    assert page.locator("tr[data-retried=rq-1]").count() == 2
    assert "retry · attempt 2" in page.inner_text("tr[data-event=ev-102]")
    _shot(page, "trace")
    page.go_back()
    page.click("a[data-link=session]")
    page.wait_for_url("**/sessions/se-1/")
    assert page.locator("table[data-table=group] tbody tr").count() == 4
    assert not problems, problems
    ctx.close()


def test_the_filter_panel_leaves_apply_clear_and_folds_on_a_phone(
    browser: Any,  # noqa: F811 (the fixture imported above)
    live_server: Any,
    site: Project,  # noqa: F811
) -> None:
    ctx, page, problems = _signed_in(browser, live_server, viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/p/{site.pk}/?{RANGE}")
    apply = page.locator("form.filters button[type=submit]")
    for dim in ("feature", "model", "status"):
        page.click(f"details[data-dim={dim}] summary")
        box = apply.bounding_box()
        assert box is not None
        # what is drawn at the middle of Apply is Apply itself, not an open picker's panel
        hit = page.evaluate(
            "([x, y]) => { const e = document.elementFromPoint(x, y); return e && e.closest('button') !== null"
            " && e.closest('button').type === 'submit'; }",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit, dim
    _shot(page, "filters-open-picker")
    # a preset link sets the range
    page.click("a[data-preset='7d']")
    page.wait_for_url("**from=**")
    assert page.locator("a[data-preset='7d'].active").count() == 1
    # the time-zone picker is a list to choose from
    page.select_option("select[data-tz]", "Asia/Tokyo")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**tz=Asia%2FTokyo**")
    ctx.close()

    phone, small, phone_problems = _signed_in(browser, live_server, viewport={"width": 390, "height": 844})
    for path in ("", "calls/", "engineering/"):
        small.goto(f"{live_server.url}/p/{site.pk}/{path}?{RANGE}")
        assert small.locator("details[data-filter-panel]").get_attribute("open") is None, path
        summary = small.locator("details[data-filter-panel] > summary").bounding_box()
        assert summary is not None
        # the folded panel is one line in the upper half of the first screen (below the nav, which wraps
        # onto several lines at this width rather than hiding items)
        assert summary["height"] < 60, path
        assert summary["y"] + summary["height"] < 844 / 2, path
        assert small.evaluate("document.documentElement.scrollWidth") <= 391, path
    small.click("details[data-filter-panel] > summary")
    assert small.locator("form.filters button[type=submit]").is_visible()
    _shot(small, "filters-phone-open")
    assert not problems + phone_problems
    phone.close()


def test_keyboard_users_skip_to_the_content_and_dark_mode_follows_the_system(
    browser: Any,  # noqa: F811 (the fixture imported above)
    live_server: Any,
    site: Project,  # noqa: F811
) -> None:
    ctx, page, problems = _signed_in(browser, live_server, viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/p/{site.pk}/calls/?{RANGE}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert page.evaluate("document.activeElement.getBoundingClientRect().top >= 0")  # shown when focused
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    ctx.close()
    dark_ctx, dark, dark_problems = _signed_in(
        browser, live_server, viewport={"width": 1280, "height": 900}, color_scheme="dark"
    )
    dark.goto(f"{live_server.url}/p/{site.pk}/?{RANGE}")
    background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != light
    red, green, blue = (int(v) for v in background.removeprefix("rgb(").rstrip(")").split(","))
    assert red + green + blue < 3 * 60  # dark
    _shot(dark, "overview-dark")
    assert not problems + dark_problems
    dark_ctx.close()
