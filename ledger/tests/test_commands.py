"""rollup and reprice commands: ranges, clear errors, and a price correction reaching the rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls, raw_count
from ledger.clickhouse.client import get_clickhouse
from ledger.models import DirtyBucket, PriceOverride
from ledger.queries import UsageQuery, usage
from tenancy.models import Project

DAY = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rollup", "--from", "2026-11-02"), "give both --from and --to"),
        (("rollup", "--from", "2026-11-02", "--to", "2026-11-01"), "--from must be before --to"),
        (("rollup", "--from", "last week", "--to", "2026-11-01"), "is not a date"),
        (("rollup", "--from", "2026-11-01T00:00", "--to", "2026-11-02"), "needs a UTC offset"),
        (("reprice", "--from", "2026-11-01", "--to", "2026-11-02", "--project", "nope"), "no project named"),
    ],
)
def test_bad_arguments_are_explained(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)


@pytest.mark.django_db
def test_reprice_after_a_price_correction_updates_raw_rows_and_rollups(api: APIClient, project: Project) -> None:
    # given a self-hosted model sent before anyone priced it
    calls = [
        {"event_id": f"r{i}", "timestamp": (DAY + timedelta(hours=i)).isoformat(), "provider": "selfhost",
         "model": "tiny", "input_tokens": 1_000_000, "output_tokens": 0}
        for i in range(3)
    ]  # fmt: skip
    post_calls(api, calls)
    drain()
    run("rollup")
    window = UsageQuery(project.pk, DAY, DAY + timedelta(days=1), None, metrics=("cost", "unpriced_calls"))
    assert usage(window).rows == [{"cost": Decimal("0E-12"), "unpriced_calls": 3}]
    # when its price is added and the range repriced
    PriceOverride.objects.create(
        project=project, provider="selfhost", model="tiny", effective_from=DAY - timedelta(days=1),
        input_per_mtok=Decimal("0.25"), output_per_mtok=Decimal("1"),
    )  # fmt: skip
    out = run("reprice", "--from", DAY.date().isoformat(), "--to", (DAY + timedelta(days=1)).date().isoformat(),
              "--project", project.name)  # fmt: skip
    assert "repriced 3 call(s)" in out
    # then raw rows carry the new cost (replacing the old rows) and so do the rollups
    assert raw_count(project, final=True) == 3
    costs = (
        get_clickhouse()
        .query(
            "SELECT sum(cost_pusd), countIf(cost_source = 'override') FROM llm_calls FINAL"
            " WHERE project_id = {p:UInt64}",
            parameters={"p": project.pk},
        )
        .result_rows[0]
    )
    assert costs == (3 * 250_000_000_000, 3)
    assert usage(window).rows == [{"cost": Decimal("0.750000000000"), "unpriced_calls": 0}]
    assert not DirtyBucket.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_rollup_range_rebuilds_hours_with_calls(api: APIClient, project: Project) -> None:
    post_calls(api, [{"event_id": "x", "timestamp": DAY.isoformat(), "provider": "openai", "model": "gpt-4o"}])
    drain()
    DirtyBucket.objects.filter(project=project).delete()  # as if the marks were lost
    window = UsageQuery(project.pk, DAY, DAY + timedelta(days=1), None, metrics=("calls",))
    assert usage(window).rows == [{"calls": 0}]
    end = (DAY + timedelta(days=1)).date().isoformat()
    out = run("rollup", "--from", DAY.date().isoformat(), "--to", end, "--project", project.name)
    assert "marked 1 hour(s) dirty" in out
    assert usage(window).rows == [{"calls": 1}]


@pytest.mark.django_db
def test_reprice_in_slices_rewrites_a_batch_that_spans_them(api: APIClient, project: Project) -> None:
    from ledger.reprice import reprice

    # one batch whose calls fall into different reprice slices
    calls = [
        {"event_id": f"s{i}", "timestamp": (DAY + timedelta(hours=5 * i)).isoformat(), "provider": "selfhost",
         "model": "tiny", "input_tokens": 1_000_000, "output_tokens": 0}
        for i in range(4)
    ]  # fmt: skip
    post_calls(api, calls)
    drain()
    PriceOverride.objects.create(
        project=project, provider="selfhost", model="tiny", effective_from=DAY - timedelta(days=1),
        input_per_mtok=Decimal("1"), output_per_mtok=Decimal("1"),
    )  # fmt: skip
    assert reprice(project.pk, DAY, DAY + timedelta(days=1), step=timedelta(hours=4)) == 4
    costs = (
        get_clickhouse()
        .query(
            "SELECT count(), sum(cost_pusd) FROM llm_calls FINAL WHERE project_id = {p:UInt64}",
            parameters={"p": project.pk},
        )
        .result_rows[0]
    )
    assert costs == (4, 4 * 10**12)
