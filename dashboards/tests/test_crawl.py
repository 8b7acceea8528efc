"""Crawl the dashboards in a real browser as each role, from the navigation, following every link.

Pages are found only from links (nav, view switches, drill-downs, pagination), so a page someone
adds later is crawled too. The crawl fails on a malformed href (``??stack=``, a template left
unrendered), a non-2xx answer, a console or page error, a request outside the app, or a table
header cut off at 1280 px. Every page is photographed at 1280 and 390 px under
``test-output/crawl/<role>/``. To keep the run short, URLs that differ only in query *values*
are visited a bounded number of times per view (every view switch still gets its own visit),
and downloads and pages outside the dashboards (admin, API) are requested, not rendered.
"""

from __future__ import annotations

import os
import re
from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.urls import Resolver404, resolve

from dashboards.tests.conftest import ROLES
from dashboards.tests.test_browser import OUTPUT, PASSWORD
from dashboards.tests.test_browser import _end_live_server_sessions as _end_live_server_sessions  # fixtures
from dashboards.tests.test_browser import browser as browser
from dashboards.tests.test_browser import site as site
from tenancy.models import Membership, Project

SHOTS = OUTPUT / "crawl"
MAX_PAGES = int(os.environ.get("METERLINE_CRAWL_PAGES", "45"))  # rendered pages per role
MAX_VARIANTS = 8  # rendered URLs per (view, set of query parameter names): view switches have fewer values
MAX_CHECKED = 250  # further links per role whose answer is checked without rendering
RENDERED_ELSEWHERE = ("/admin/", "/v1/", "/static/", "/metrics", "/healthz", "/readyz")
# A raw href is malformed when the template that wrote it went wrong.
MALFORMED = [
    (re.compile(r"\?\?"), "two question marks"),
    (re.compile(r"\?&|&&|&$"), "an empty parameter"),
    (re.compile(r"\{\{|\{%|%\}|\}\}"), "an unrendered template"),
    (re.compile(r"\s"), "whitespace"),
    (re.compile(r"^$"), "empty"),
    (re.compile(r"(^|[?&])[^=&]*=(None|undefined|null)(&|$)"), "a None value"),
]
# Navigation items a phone user cannot see whole or tap (off screen, clipped, or covered).
HIDDEN_NAV = """() => [...document.querySelectorAll('nav.tabs a')].filter(a => {
  const r = a.getBoundingClientRect();
  if (r.width === 0 || r.left < 0 || r.right > window.innerWidth + 1 || a.scrollWidth > a.clientWidth + 1) return true;
  let box = a.parentElement;
  for (; box; box = box.parentElement) {
    const b = box.getBoundingClientRect();
    if (getComputedStyle(box).overflowX !== 'visible' && (r.left < b.left - 1 || r.right > b.right + 1)) return true;
  }
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return !(hit && (hit === a || a.contains(hit)));
}).map(a => a.textContent.trim())"""
# Tables of up to five columns of figures (compare's A, B, B − A, change) must fit a phone without scrolling.
NARROW_TABLES_CUT = """() => [...document.querySelectorAll('.table-wrap')].filter(w => {
  const t = w.querySelector('table');
  const heads = t ? [...t.querySelectorAll('thead th')] : [];
  // a few columns of figures (text columns wrap instead): compare's A, B, B - A and change
  const figures = heads.length > 1 && heads.slice(1).every(th => th.classList.contains('num'));
  return figures && heads.length <= 5 && w.scrollWidth > w.clientWidth + 1;
}).map(w => (w.closest('[data-table]')?.dataset.table
  || w.closest('section')?.querySelector('h2')?.textContent.trim() || '(table)')
  + ` (${w.scrollWidth} px in ${w.clientWidth})`)"""
# After a viewport change: plotly redraws its charts at the new width, then two frames for layout.
SETTLE = """() => Promise.all([...document.querySelectorAll('.chart')].filter(c => c.data && window.Plotly)
  .map(c => Plotly.Plots.resize(c)))
  .then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))))"""
LINKS = "els => els.map(e => [e.getAttribute('href'), e.href, e.hasAttribute('download'), e.textContent.trim()])"
# Header cells whose text does not fit, or that lie outside what their scroll box shows.
CUT_HEADERS = """() => [...document.querySelectorAll('th')].filter(th => th.offsetParent !== null).flatMap(th => {
  const box = th.closest('.table-wrap') || th.closest('table').parentElement;
  const r = th.getBoundingClientRect(), b = box.getBoundingClientRect();
  const cut = th.scrollWidth > th.clientWidth + 1 || r.right > b.right + 1 || r.left < b.left - 1;
  return cut ? [th.textContent.trim() + ' (' + th.closest('[data-table]')?.dataset.table + ')'] : [];
})"""


def malformed(href: str) -> str | None:
    for pattern, why in MALFORMED:
        if pattern.search(href):
            return why
    return None


def view_of(path: str) -> str:
    """The URL pattern a path resolves to (a drill-down's pages share one), or the path itself."""
    try:
        return resolve(path).route
    except Resolver404:
        return path


def shot_name(url: str) -> str:
    parts = urlsplit(url)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{parts.path}-{parts.query}").strip("-")
    return slug[:150] or "root"


class Crawl:
    """One role's crawl: a breadth-first walk over the app's links, with what went wrong."""

    def __init__(self, chromium: Any, base: str, role: str) -> None:
        self.base, self.role = base, role
        self.problems: list[str] = []
        self.rendered: list[str] = []
        self.context = chromium.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.current = "(sign-in)"
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"{self.current}: page error: {e}"))
        self.page.on("request", self._request)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"{self.current}: console error: {message.text}")

    def _request(self, request: Any) -> None:
        url = request.url
        if not (url.startswith(self.base + "/") or url == self.base or url.startswith(("data:", "blob:"))):
            self.problems.append(f"{self.current}: request outside the app: {url}")

    def sign_in(self, username: str) -> None:
        self.page.goto(f"{self.base}/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()
        assert "/accounts/login/" not in self.page.url, (self.role, "sign-in failed")

    def run(self, start: str) -> None:
        queue: deque[str] = deque([start])
        seen: set[str] = {start}
        variants: dict[tuple[str, frozenset[str]], int] = {}
        checked = 0
        while queue:
            url = queue.popleft()
            parts = urlsplit(url)
            names = frozenset(k for k, _ in parse_qsl(parts.query, keep_blank_values=True))
            key = (view_of(parts.path), names)
            elsewhere = parts.path.startswith(RENDERED_ELSEWHERE)
            if not elsewhere and len(self.rendered) < MAX_PAGES and variants.get(key, 0) < MAX_VARIANTS:
                variants[key] = variants.get(key, 0) + 1
                for _href, absolute, download, text in self.visit(url):
                    target = absolute.split("#")[0]
                    if target in seen or not target.startswith(self.base + "/"):
                        continue
                    seen.add(target)
                    if download:
                        checked += 1
                        self.check(target, f"download {text!r} on {self.current}")
                    else:
                        queue.append(target)
            elif checked < MAX_CHECKED:
                checked += 1
                self.check(url, "a link")

    def visit(self, url: str) -> list[list[Any]]:
        self.current = url.removeprefix(self.base)
        answer = self.page.goto(url)
        status = answer.status if answer is not None else 0
        if not 200 <= status < 300:
            self.problems.append(f"{self.current}: answered {status}")
            return []
        self.rendered.append(self.current)
        charts = self.page.locator("script[data-chart]").count()
        if charts:
            self.page.wait_for_function(
                "n => document.querySelectorAll('.chart .main-svg').length >= n", arg=charts, timeout=15_000
            )
        for header in self.page.evaluate(CUT_HEADERS):
            self.problems.append(f"{self.current}: header cut off at 1280 px: {header}")
        links: list[list[Any]] = self.page.eval_on_selector_all("a[href]", LINKS)
        for href, _, _, text in links:
            why = malformed(href)
            if why:
                self.problems.append(f"{self.current}: malformed href {href!r} ({why}) on {text!r}")
        folder = SHOTS / self.role
        folder.mkdir(parents=True, exist_ok=True)
        name = shot_name(url)
        self.page.screenshot(path=str(folder / f"{name}-1280.png"), full_page=True)
        self.page.set_viewport_size({"width": 390, "height": 844})
        self.page.evaluate(SETTLE)
        self.page.evaluate("window.scrollTo(0, 0)")
        for item in self.page.evaluate(HIDDEN_NAV):
            self.problems.append(f"{self.current}: nav item {item!r} not visible at 390 px")
        for table in self.page.evaluate(NARROW_TABLES_CUT):
            self.problems.append(f"{self.current}: table {table!r} cut off at 390 px")
        self.page.screenshot(path=str(folder / f"{name}-390.png"), full_page=True)
        # Back to 1280 px for the next page, which is loaded (and its charts drawn) at that width:
        # nothing more is read from this one, so its charts' redraw is not waited for.
        self.page.set_viewport_size({"width": 1280, "height": 900})
        return [link for link in links if not malformed(link[0])]

    def check(self, url: str, what: str) -> None:
        answer = self.page.request.get(url, max_redirects=5)
        if not 200 <= answer.status < 300:
            self.problems.append(f"{url.removeprefix(self.base)} ({what}): answered {answer.status}")


@pytest.mark.parametrize("role", ROLES)
def test_crawl_every_page_as_each_role(browser: Any, live_server: Any, site: Project, role: str) -> None:
    user = get_user_model().objects.create_user(f"crawl-{role}", password=PASSWORD)
    Membership.objects.create(user=user, organization=site.organization, role=role)
    crawl = Crawl(browser, live_server.url, role)
    try:
        crawl.sign_in(user.username)
        crawl.run(f"{live_server.url}/p/{site.pk}/")
    finally:
        crawl.context.close()
    views = {view_of(urlsplit(u).path) for u in crawl.rendered}
    # The crawl reached the pages the role's navigation offers (and only from links).
    expected = {"p/<int:project_id>/", "p/<int:project_id>/engineering/", "p/<int:project_id>/compare/"}
    if role != "viewer":
        expected |= {"p/<int:project_id>/customers/<path:customer>/", "p/<int:project_id>/calls/"}
    if role == "admin":
        expected |= {"p/<int:project_id>/settings/", "p/<int:project_id>/prices/"}
    assert expected <= views, (role, sorted(views))
    assert not crawl.problems, "\n".join(crawl.problems)
