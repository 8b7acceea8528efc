"""Every dashboard page for every role, the numbers they show, filters, exports and empty states."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from dashboards.tables import Table
from dashboards.tests.conftest import DAY1, ROLES, TODAY
from ingest.tests.helpers import raw_rows
from ledger.models import PriceOverride
from ledger.pricing import pusd_to_usd
from ledger.rollups import rollup_dirty
from tenancy.models import ApiKey, Membership, Project

PAGES = {  # page → (path after /p/<id>/, the least role that may open it)
    "overview": ("", "viewer"),
    "engineering": ("engineering/", "viewer"),
    "compare": ("compare/", "viewer"),
    "customers": ("customers/", "finance"),
    "customer": ("customers/acme/", "finance"),
    "calls": ("calls/", "finance"),
    "call": ("calls/ev-3/", "finance"),
    "keys": ("settings/", "admin"),
    "members": ("settings/members/", "admin"),
    "prices": ("prices/", "admin"),
    "advisor": ("settings/advisor/", "admin"),
    "capacity": ("capacity/", "engineer"),
    "limits": ("settings/limits/", "admin"),
}
MAY = {
    "viewer": set(ROLES),
    "finance": {"finance", "engineer", "admin"},
    "engineer": {"engineer", "admin"},
    "admin": {"admin"},
}
RANGE = {"from": DAY1.date().isoformat(), "to": TODAY.date().isoformat()}


def url(project: Project, path: str) -> str:
    return f"/p/{project.pk}/{path}"


def usage(project: Project, **params: Any) -> list[dict[str, Any]]:
    key = ApiKey.issue(project, ["read"])[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    answer = client.get(
        "/v1/usage",
        {"from": DAY1.isoformat(), "to": (TODAY + timedelta(days=1)).isoformat(), **params},
    )
    assert answer.status_code == 200, answer.content
    rows: list[dict[str, Any]] = answer.json()["data"]
    return rows


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_exactly_its_pages(traffic: Project, member: Any, role: str) -> None:
    client = member(role)
    for page, (path, least) in PAGES.items():
        allowed = role in MAY[least]
        answer = client.get(url(traffic, path))
        assert answer.status_code == (200 if allowed else 403), (page, role, answer.status_code)


@pytest.mark.django_db
def test_other_projects_are_404_and_anonymous_users_sign_in(traffic: Project, outsider: Client) -> None:
    for path, _ in PAGES.values():
        assert outsider.get(url(traffic, path)).status_code == 404
        answer = Client().get(url(traffic, path))
        assert answer.status_code == 302
        assert "/accounts/login/" in answer["Location"]
    assert outsider.get(f"/switch?project={traffic.pk}").status_code == 404


@pytest.mark.django_db
def test_overview_figures_match_the_ledger(traffic: Project, member: Any) -> None:
    page = member("finance").get(url(traffic, ""), RANGE)
    ctx = page.context
    by_feature = {r["feature"]: Decimal(r["cost"]) for r in usage(traffic, granularity="total", group_by="feature")}
    features = {r["feature"]: r["cost"] for r in _table(ctx, "features")}
    assert features == by_feature
    total = sum(by_feature.values())
    assert ctx["kpis"][0]["value"] == total
    # Waste: eval traffic and the failed live call in full, the live retry's cost; nothing twice.
    rows = {r["event_id"]: Decimal(r["cost"]) for r in _calls_cost(traffic)}
    waste = {r["kind"]: r["cost"] for r in _table(ctx, "waste")}
    assert waste["Eval and shadow traffic"] == rows["ev-7"]
    assert waste["Failed live calls (error, timeout, cancelled)"] == rows["ev-5"]
    assert waste["Retries of successful live calls"] == rows["ev-6"]
    assert waste["Total"] == rows["ev-5"] + rows["ev-6"] + rows["ev-7"]
    # The unpriced self-hosted model is flagged, with a way to price it for admins only.
    body = page.content.decode()
    assert "selfhost/llama-ft" in body
    assert "an admin can add a price" in body
    admin_body = member("admin").get(url(traffic, ""), RANGE).content.decode()
    assert f"/p/{traffic.pk}/prices/?provider=selfhost&amp;model=llama-ft" in admin_body


def _table(ctx: Any, name: str) -> list[dict[str, Any]]:
    table: Table | None = ctx["page_data"].table(name)
    assert table is not None, name
    return table.rows


def _calls_cost(project: Project) -> list[dict[str, Any]]:
    return [{"event_id": r["event_id"], "cost": pusd_to_usd(r["cost_pusd"])} for r in raw_rows(project)]


@pytest.mark.django_db
def test_a_filter_in_the_url_changes_the_numbers(traffic: Project, member: Any) -> None:
    client = member("viewer")
    everything = client.get(url(traffic, ""), RANGE).context["kpis"][0]["value"]
    search = client.get(url(traffic, ""), {**RANGE, "feature": "search"}).context["kpis"][0]["value"]
    expected = sum(Decimal(r["cost"]) for r in usage(traffic, granularity="total", feature="search"))
    assert search == expected
    assert 0 < search < everything


@pytest.mark.django_db
def test_csv_export_carries_the_exact_numbers_of_v1_usage(traffic: Project, member: Any) -> None:
    answer = member("finance").get(url(traffic, ""), {**RANGE, "export": "features"})
    assert answer["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    api = {r["feature"]: r for r in usage(traffic, granularity="total", group_by="feature")}
    assert {r["feature"]: r["cost"] for r in rows} == {f: r["cost"] for f, r in api.items()}
    assert {r["feature"]: int(r["calls"]) for r in rows} == {f: r["calls"] for f, r in api.items()}
    assert member("finance").get(url(traffic, ""), {**RANGE, "export": "nope"}).status_code == 404


@pytest.mark.django_db
def test_engineering_shows_latency_by_model_and_the_slowest_calls(traffic: Project, member: Any) -> None:
    client = member("engineer")
    page = client.get(url(traffic, "engineering/"), RANGE)
    assert [cid for cid, _ in page.context["charts"]] == ["latency", "ttft", "rates", "throughput", "routes", "tokens"]
    models = {r["model"]: r for r in _table(page.context, "models")}
    assert models["gpt-4o"]["latency_p50"] > models["gpt-4o-mini"]["latency_p50"]
    slowest = client.get(url(traffic, "calls/"), {**RANGE, "order": "latency"}).context["calls"]
    assert [c["event_id"] for c in slowest[:2]] == ["ev-10", "ev-3"]
    detail = client.get(url(traffic, "calls/ev-4/")).content.decode()
    for field in ("cache_read_tokens", "route_version", "cost_cache_read_usd", "price_ref", "received_at"):
        assert f'data-field="{field}"' in detail


@pytest.mark.django_db
def test_compare_puts_two_route_versions_side_by_side(traffic: Project, member: Any) -> None:
    page = member("viewer").get(url(traffic, "compare/"), {**RANGE, "dim": "route_version", "a": "v1", "b": "v2"})
    rows = {r["metric"]: r for r in page.context["comparison"]}
    api = {r["route_version"]: r for r in usage(traffic, granularity="total", group_by="route_version",
                                                 metrics="calls,cost")}  # fmt: skip
    assert rows["Calls"]["a"] == api["v1"]["calls"]
    assert rows["Calls"]["b"] == api["v2"]["calls"]
    assert rows["Cost"]["delta"] == Decimal(api["v2"]["cost"]) - Decimal(api["v1"]["cost"])
    assert rows["Latency p50"]["verdict"] == "worse"  # v2 routes to the slower full model
    assert rows["Feedback score"]["b"] == 1.0
    assert rows["Feedback score"]["a"] == 0.0


@pytest.mark.django_db
def test_customer_page_compares_with_the_average(traffic: Project, member: Any) -> None:
    page = member("finance").get(url(traffic, "customers/globex/"), RANGE)
    api = usage(traffic, granularity="total", customer_id="globex", group_by="feature,model")
    rows = {(r["feature"], r["model"]): r["cost"] for r in _table(page.context, "features")}
    assert rows == {(r["feature"], r["model"]): Decimal(r["cost"]) for r in api}
    listing = member("finance").get(url(traffic, "customers/"), RANGE).content.decode()
    assert f"/p/{traffic.pk}/customers/globex/?" in listing


@pytest.mark.django_db
def test_an_empty_project_says_how_to_send_the_first_record(project: Project, member: Any) -> None:
    admin = member("admin")
    for path in ("", "engineering/", "customers/", "calls/"):
        body = admin.get(url(project, path)).content.decode()
        assert "data-empty" in body, path
        assert "/v1/calls" in body, path
        assert "plotly.min.js" not in body


@pytest.mark.django_db
def test_bad_filters_are_explained_not_500(traffic: Project, member: Any) -> None:
    answer = member("viewer").get(url(traffic, ""), {"from": "yesterday", "tz": "Mars/Base", "granularity": "week"})
    assert answer.status_code == 200
    body = answer.content.decode()
    assert "from must be a date" in body
    assert "unknown time zone" in body
    assert "granularity must be one of" in body


@pytest.mark.django_db
def test_the_switcher_opens_the_same_page_in_another_project(traffic: Project, member: Any) -> None:
    client = member("admin")
    other = Project.objects.create(organization=traffic.organization, name=f"{traffic.name}-b")
    answer = client.get("/switch", {"project": other.pk, "page": "dashboards:engineering"})
    assert answer["Location"] == f"/p/{other.pk}/engineering/"


@pytest.mark.django_db
def test_admins_create_and_revoke_keys(project: Project, member: Any) -> None:
    client = member("admin")
    page = client.post(url(project, "settings/"), {"name": "checkout", "scopes": ["ingest"]})
    raw = page.context["raw"]
    key = ApiKey.objects.get(project=project, name="checkout")
    assert raw.startswith("ml_")
    assert key.prefix == raw[:10]
    assert raw not in key.key_hash
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.post("/v1/calls", {"calls": []}, format="json").status_code != 401
    assert raw not in client.get(url(project, "settings/")).content.decode()  # shown once
    client.post(url(project, "settings/"), {"revoke": key.pk})
    assert api.post("/v1/calls", {"calls": []}, format="json").status_code == 401


@pytest.mark.django_db
def test_admins_name_the_batch_eligible_live_features(project: Project, member: Any) -> None:
    admin = member("admin")
    page = admin.post(url(project, "settings/advisor/"), {"batch_eligible_features": "nightly-report, doc-extract\n"})
    assert page.status_code == 302
    project.refresh_from_db()
    assert project.batch_eligible_features == ["nightly-report", "doc-extract"]
    shown = admin.get(url(project, "settings/advisor/")).content.decode()
    assert "nightly-report\ndoc-extract" in shown
    # a name longer than a CallRecord's feature can be is refused, and nothing changes
    refused = admin.post(url(project, "settings/advisor/"), {"batch_eligible_features": "x" * 201})
    assert refused.status_code == 200
    assert "feature names of 1-200 characters" in refused.content.decode()
    project.refresh_from_db()
    assert project.batch_eligible_features == ["nightly-report", "doc-extract"]
    admin.post(url(project, "settings/advisor/"), {"batch_eligible_features": ""})
    project.refresh_from_db()
    assert project.batch_eligible_features == []


@pytest.mark.django_db
def test_admins_manage_members(project: Project, member: Any) -> None:
    admin = member("admin")
    admin.post(url(project, "settings/members/"), {"username": "newcomer", "role": "finance"})
    joined = Membership.objects.get(user__username="newcomer")
    assert joined.role == "finance"
    assert joined.organization == project.organization
    admin.post(url(project, "settings/members/"), {"role_for": joined.pk, "role": "viewer"})
    joined.refresh_from_db()
    assert joined.role == "viewer"
    own = Membership.objects.get(user=admin.user)
    admin.post(url(project, "settings/members/"), {"remove": own.pk})
    assert Membership.objects.filter(pk=own.pk).exists()  # nobody locks themselves out
    admin.post(url(project, "settings/members/"), {"remove": joined.pk})
    assert not Membership.objects.filter(pk=joined.pk).exists()


@pytest.mark.django_db
def test_adding_a_price_reprices_the_unpriced_calls(traffic: Project, member: Any) -> None:
    admin = member("admin")
    before = admin.get(url(traffic, ""), RANGE).context["unpriced"]
    assert [m["model"] for m in before] == ["llama-ft"]
    answer = admin.post(
        url(traffic, "prices/"),
        {
            "provider": "selfhost",
            "model": "llama-ft",
            "effective_from": "2000-01-01 00:00",
            "input_per_mtok": "1",
            "output_per_mtok": "2",
            "reprice": "on",
        },
    )
    assert answer.status_code == 302
    assert PriceOverride.objects.filter(project=traffic, model="llama-ft").exists()
    rollup_dirty()
    after = admin.get(url(traffic, ""), RANGE)
    assert after.context["unpriced"] == []
    llama = next(r for r in _table(after.context, "models") if r["model"] == "llama-ft")
    assert llama["cost"] == Decimal("0.0014")  # 1000 in × $1/M + 200 out × $2/M


@pytest.mark.django_db
def test_viewers_see_no_per_customer_figures(traffic: Project, member: Any) -> None:
    viewer = member("viewer")
    page = viewer.get(url(traffic, ""), {**RANGE, "stack": "customer_id", "customer_id": "globex"})
    assert page.context["page_data"].table("customers") is None
    assert page.context["stack"] == "feature"  # the customer stack is not offered
    assert "acme" not in page.content.decode()
    everything = member("finance").get(url(traffic, ""), RANGE).context["kpis"][0]["value"]
    assert page.context["kpis"][0]["value"] == everything  # the customer filter is ignored, not applied
    assert viewer.get(url(traffic, ""), {**RANGE, "export": "customers"}).status_code == 404


@pytest.mark.django_db
def test_odd_event_ids_and_dates_never_500(api: APIClient, traffic: Project, member: Any) -> None:
    from dashboards.tests.conftest import call, ingest

    ingest(api, [call(99, 1, 5, event_id="batch/7#x?y", customer_id="=HYPERLINK(1)", input_tokens=900000)])
    client = member("finance")
    listing = client.get(url(traffic, "calls/"), RANGE)
    assert listing.status_code == 200
    assert f"/p/{traffic.pk}/calls/batch/7%23x%3Fy/" in listing.content.decode()
    assert client.get(url(traffic, "calls/batch/7%23x%3Fy/")).status_code == 200
    for params in (
        {"to": "0001-01-05"},
        {"to": "9999-12-31"},
        {"from": "0001-01-01", "to": "0001-01-01", "tz": "Asia/Tokyo"},
    ):
        answer = client.get(url(traffic, ""), params)
        assert answer.status_code == 200, params
        assert "must be between" in answer.content.decode()
    exported = client.get(url(traffic, ""), {**RANGE, "export": "customers"}).content.decode()
    assert "'=HYPERLINK(1)" in exported  # a spreadsheet shows it, never runs it


@pytest.mark.django_db
def test_a_new_members_password_is_shown_once_and_kept_nowhere(project: Project, member: Any) -> None:
    admin = member("admin")
    answer = admin.post(url(project, "settings/members/"), {"username": "fresh", "role": "viewer"})
    password = answer.context["password"]
    assert password in answer.content.decode()
    assert all(password not in c.value for c in answer.cookies.values())
    assert password not in admin.get(url(project, "settings/members/")).content.decode()
    assert Client().login(username="fresh", password=password)
    assert admin.post(url(project, "settings/"), {"revoke": "not-a-number"}).status_code == 302
    assert admin.post(url(project, "settings/members/"), {"remove": "x"}).status_code == 302


@pytest.mark.django_db
def test_overview_shows_each_budgets_burn_this_period(traffic: Project, member: Any) -> None:
    from alerts.models import Budget

    Budget.objects.create(project=traffic, name="all spend", amount=Decimal("0.01"), period="week")
    Budget.objects.create(
        project=traffic, name="search", amount=Decimal("1"), period="month", scope={"feature": ["search"]}
    )
    page = member("viewer").get(url(traffic, ""), RANGE)
    rows = {b["name"]: b for b in page.context["budgets"]}
    for name, params in (("all spend", {}), ("search", {"feature": "search"})):
        window = rows[name]["period"]
        spent = usage_between(traffic, window.start, window.end, **params)
        assert rows[name]["spent"] == spent
        assert rows[name]["pct"] == pytest.approx(float(spent / rows[name]["amount"]), abs=0.001)
    assert "all spend" in page.content.decode()
    assert page.context["kpis"][2]["label"] == "Month to date"


def usage_between(project: Project, start: Any, end: Any, **params: Any) -> Decimal:
    key = ApiKey.issue(project, ["read"])[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    answer = client.get(
        "/v1/usage", {"from": start.isoformat(), "to": end.isoformat(), "granularity": "total", **params}
    )
    return sum((Decimal(r["cost"]) for r in answer.json()["data"]), start=Decimal(0))


@pytest.mark.django_db
def test_the_calls_list_exports_every_listed_field(traffic: Project, member: Any) -> None:
    answer = member("engineer").get(url(traffic, "calls/"), {**RANGE, "order": "latency", "export": "calls"})
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert [r["event_id"] for r in rows[:2]] == ["ev-10", "ev-3"]
    costs = {r["event_id"]: r["cost"] for r in _calls_cost(traffic)}
    assert all(Decimal(r["cost_usd"]) == costs[r["event_id"]] for r in rows)
    assert rows[0]["latency_ms"] == "3100.0"


@pytest.mark.django_db
def test_customer_ids_with_commas_stay_whole_and_the_box_adds_more(
    api: APIClient, traffic: Project, member: Any
) -> None:
    from dashboards.tests.conftest import call, ingest

    ingest(api, [call(77, 1, 6, customer_id="Acme, Inc")])
    client = member("finance")
    exact = client.get(url(traffic, ""), {**RANGE, "customer_id": "Acme, Inc"}).context["kpis"][0]["value"]
    assert exact == next(r["cost"] for r in _calls_cost(traffic) if r["event_id"] == "ev-77")
    assert exact > 0
    both = client.get(url(traffic, ""), {**RANGE, "customer_id": "Acme, Inc", "customers": "globex, nobody"})
    assert both.context["filters"].dims["customer_id"] == ("Acme, Inc", "globex", "nobody")
    assert 'name="customer_id" value="Acme, Inc"' in both.content.decode()
