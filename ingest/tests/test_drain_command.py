"""`manage.py drain` after an outage: without --now it says what still waits out its backoff;
with --now it drains everything at once, and says so only when it is true."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from ingest.models import Batch, BatchStatus
from ingest.tests.helpers import post_calls, raw_count
from tenancy.models import Project


def calls(n: int, prefix: str) -> list[dict[str, object]]:
    return [
        {"event_id": f"{prefix}{i}", "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 1}
        for i in range(n)
    ]


def drain(*args: str) -> str:
    out = io.StringIO()
    call_command("drain", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_drain_after_an_outage_says_what_waits_and_now_drains_it_all(api: APIClient, project: Project) -> None:
    for i in range(3):
        assert post_calls(api, calls(10, f"b{i}-")).status_code == 202
    # ClickHouse unreachable for one drain: every batch goes back to pending, in backoff
    with override_settings(CLICKHOUSE_URL="http://127.0.0.1:1"):
        out = drain()
    assert "drained 0 batch(es), 0 record(s); 3 failed" in out
    assert "3 pending in retry backoff, the next due in " in out
    assert "drain --now drains them at once" in out
    assert "nothing" not in out

    # ClickHouse is back; a plain drain inside the backoff drains nothing and says why, truthfully
    out = drain()
    assert "drained 0 batch(es), 0 record(s); 0 failed" in out
    wait = int(re.search(r"the next due in (\d+) s", out).group(1))  # type: ignore[union-attr]
    first_due = min(Batch.objects.filter(project=project).values_list("next_attempt_at", flat=True))
    assert abs(wait - (first_due - timezone.now()).total_seconds()) <= 2
    assert raw_count(project) == 0

    # --now: every pending batch is due now, all drained at once, and the output says nothing is left
    out = drain("--now")
    assert "3 batch(es) in retry backoff made due now" in out
    assert "drained 3 batch(es), 30 record(s); 0 failed" in out
    assert "left: nothing, every accepted batch is drained" in out
    assert raw_count(project, final=True) == 30
    assert set(Batch.objects.filter(project=project).values_list("status", flat=True)) == {BatchStatus.DONE}


@pytest.mark.django_db
def test_drain_names_batches_another_drain_holds_and_dead_ones(api: APIClient, project: Project) -> None:
    from ingest.outbox import claim

    assert post_calls(api, calls(2, "held-")).status_code == 202
    assert post_calls(api, calls(2, "dead-")).status_code == 202
    held, dead = claim(1), claim(1)
    Batch.objects.filter(id=dead[0].id).update(status=BatchStatus.DEAD)
    out = drain()
    assert "drained 0 batch(es)" in out
    assert "1 being drained by another process" in out
    assert "1 dead (drain --status; --replay-dead)" in out
    assert held[0].id != dead[0].id
