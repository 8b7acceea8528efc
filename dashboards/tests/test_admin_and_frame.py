"""Admin registrations, the password page, styled 404/403 and the background reprice with progress."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client

from dashboards.tests.conftest import DAY1, TODAY
from ledger import reprice_jobs
from ledger.models import PriceOverride, RepriceJob, TierMultiplier
from ledger.rollups import rollup_dirty
from tenancy.models import Project

RANGE = {"from": DAY1.date().isoformat(), "to": TODAY.date().isoformat()}
LLAMA_PRICE = {
    "provider": "selfhost",
    "model": "llama-ft",
    "effective_from": "2000-01-01 00:00",
    "input_per_mtok": "1",
    "output_per_mtok": "2",
    "reprice": "on",
}


@pytest.mark.django_db
def test_prices_and_tier_multipliers_are_in_the_admin_and_deliveries_spelled_right() -> None:
    assert PriceOverride in admin.site._registry
    assert TierMultiplier in admin.site._registry
    boss = get_user_model().objects.create_superuser("boss", password="x")
    client = Client()
    client.force_login(boss)
    for path in ("/admin/ledger/priceoverride/", "/admin/ledger/tiermultiplier/", "/admin/ledger/priceoverride/add/"):
        assert client.get(path).status_code == 200, path
    index = client.get("/admin/").content.decode()
    assert "Deliveries" in index
    assert "Deliverys" not in index


@pytest.mark.django_db
def test_a_member_changes_their_password_from_the_user_menu(project: Project, member: Any) -> None:
    client = member("viewer")
    page = client.get(f"/p/{project.pk}/").content.decode()
    assert 'href="/accounts/password/"' in page  # in the user menu of every page
    form = client.get("/accounts/password/")
    assert form.status_code == 200
    html = form.content.decode()
    assert "data-user-menu" in html  # inside the app's frame
    assert "/static/web/app.css" in html
    user = client.user
    user.set_password("first-one-time-pass")
    user.save()
    client.force_login(user)
    done = client.post(
        "/accounts/password/",
        {
            "old_password": "first-one-time-pass",
            "new_password1": "a-new-Long-pass-42",
            "new_password2": "a-new-Long-pass-42",
        },
    )
    assert done.status_code == 302
    assert done["Location"] == "/accounts/password/done/"
    assert client.get(f"/p/{project.pk}/").status_code == 200  # still signed in
    user.refresh_from_db()
    assert user.check_password("a-new-Long-pass-42")


@pytest.mark.django_db
def test_404_and_403_are_pages_of_the_app(project: Project, member: Any) -> None:
    viewer = member("viewer")
    missing = viewer.get("/p/987654321/")
    assert missing.status_code == 404
    assert 'data-error="404"' in missing.content.decode()
    assert "/static/web/app.css" in missing.content.decode()
    refused = viewer.get(f"/p/{project.pk}/settings/")
    assert refused.status_code == 403
    body = refused.content.decode()
    assert 'data-error="403"' in body
    assert "your role (viewer) may not open this page" in body
    assert "/static/web/app.css" in body
    anonymous = Client().get("/no-such-page/")
    assert anonymous.status_code == 404
    assert 'data-error="404"' in anonymous.content.decode()


@pytest.fixture
def stand_in_starter() -> Any:
    """A background starter that only records the jobs handed to it (the test runs them)."""
    started: list[int] = []
    reprice_jobs.use_background(started.append)
    yield started
    reprice_jobs.use_background(None)


@pytest.mark.django_db
def test_saving_a_price_with_reprice_returns_at_once_and_shows_progress(
    traffic: Project, member: Any, stand_in_starter: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    admin_client = member("admin")
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(f"/p/{traffic.pk}/prices/", LLAMA_PRICE)
    # the request returned before any call was repriced: the job waits for the background
    assert answer.status_code == 302
    [job_id] = stand_in_starter
    job = RepriceJob.objects.get(pk=job_id)
    assert (job.status, job.percent, job.calls) == ("queued", 0, 0)
    page = admin_client.get(f"/p/{traffic.pk}/prices/").content.decode()
    assert f'data-job="{job_id}" data-status="queued"' in page
    assert 'http-equiv="refresh"' in page  # the page follows the job until it is done

    reprice_jobs.run_job(job_id)  # what the background thread or worker does

    job.refresh_from_db()
    assert (job.status, job.percent) == ("done", 100)
    assert job.calls == 10
    page = admin_client.get(f"/p/{traffic.pk}/prices/").content.decode()
    assert f'data-job="{job_id}" data-status="done"' in page
    assert 'http-equiv="refresh"' not in page
    rollup_dirty()
    assert admin_client.get(f"/p/{traffic.pk}/", RANGE).context["unpriced"] == []
    reprice_jobs.run_job(job_id)  # a job runs once
    assert RepriceJob.objects.get(pk=job_id).finished_at == job.finished_at


@pytest.mark.django_db(transaction=True)
def test_the_embedded_background_thread_runs_the_reprice(traffic: Project, member: Any) -> None:
    reprice_jobs.use_background(reprice_jobs.in_thread)
    try:
        answer = member("admin").post(f"/p/{traffic.pk}/prices/", LLAMA_PRICE)
        assert answer.status_code == 302
        job = RepriceJob.objects.get(project=traffic)
        deadline = time.monotonic() + 60
        while RepriceJob.objects.get(pk=job.pk).active and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        reprice_jobs.use_background(None)
    job.refresh_from_db()
    assert (job.status, job.percent, job.calls) == ("done", 100, 10)
