"""Thresholds fire once per period: supersession, re-arming, amount changes, concurrent workers."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connections
from rest_framework.test import APIClient

from alerts.evaluate import evaluate_all, evaluate_budgets, evaluate_one, evaluate_projects, measure, window_of
from alerts.firing import fire, rearm_after_amount_change
from alerts.models import AlertState, Budget, Channel, Delivery, Signal
from alerts.spend import SpendRequest, daily_spend
from alerts.tests.helpers import budget, receiver, spend
from ledger.forecast import crossed
from tenancy.models import Project

OCT = datetime(2026, 10, 20, 12, tzinfo=UTC)
NOV = datetime(2026, 11, 5, 12, tzinfo=UTC)


def states(b: Budget) -> dict[tuple[str, int], str]:
    return {
        (s.period_start.strftime("%Y-%m"), int(s.threshold)): s.status
        for s in AlertState.objects.filter(budget=b).order_by("pk")
    }


def test_jump_past_several_thresholds_fires_only_the_highest_and_next_period_rearms(
    project: Project, api: APIClient
) -> None:
    b = budget(project, "100.00")
    # given 40 % spent: nothing crossed yet
    spend(api, "40.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate_projects([project.pk], now=OCT)
    assert states(b) == {}
    # when one step takes it to 105 %
    spend(api, "65.00", datetime(2026, 10, 4, tzinfo=UTC))
    evaluate_projects([project.pk], now=OCT)
    # then only 100 fired; 50 and 80 are superseded
    assert states(b) == {("2026-10", 100): "fired", ("2026-10", 80): "superseded", ("2026-10", 50): "superseded"}
    fired = AlertState.objects.get(budget=b, threshold=100)
    assert (fired.spend, fired.amount) == (Decimal("105"), Decimal("100"))
    # evaluating again changes nothing
    evaluate_projects([project.pk], now=OCT)
    assert AlertState.objects.filter(budget=b).count() == 3
    # next period: every threshold is armed again
    spend(api, "55.00", datetime(2026, 11, 2, tzinfo=UTC))
    evaluate_projects([project.pk], now=NOV)
    assert states(b)[("2026-11", 50)] == "fired"
    assert ("2026-11", 80) not in states(b)


def test_amount_change_rearms_thresholds_no_longer_crossed(project: Project, api: APIClient) -> None:
    b = budget(project, "100.00")
    spend(api, "85.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate_projects([project.pk], now=OCT)
    assert states(b) == {("2026-10", 80): "fired", ("2026-10", 50): "superseded"}
    # when the amount is raised to 150: 85 is 57 % — 80 is no longer crossed, 50 still is
    Budget.objects.filter(pk=b.pk).update(amount=Decimal("150"))
    evaluate_projects([project.pk], now=OCT)
    assert states(b) == {("2026-10", 80): "rearmed", ("2026-10", 50): "superseded"}
    # and 80 fires again once spend reaches 80 % of the new amount (120)
    spend(api, "40.00", datetime(2026, 10, 4, tzinfo=UTC))
    evaluate_projects([project.pk], now=OCT)
    rows = list(AlertState.objects.filter(budget=b, threshold=80).order_by("pk").values_list("status", "amount"))
    assert rows == [("rearmed", Decimal("100")), ("fired", Decimal("150"))]
    # lowering the amount keeps crossed thresholds fired and fires the newly crossed 100
    Budget.objects.filter(pk=b.pk).update(amount=Decimal("120"))
    evaluate_projects([project.pk], now=OCT)
    assert AlertState.objects.get(budget=b, threshold=100).status == "fired"
    assert AlertState.objects.filter(budget=b, threshold=80, status="fired").count() == 1


def test_scope_counts_only_matching_calls(project: Project, api: APIClient) -> None:
    search = budget(project, "10.00", name="search", scope={"feature": ["search"]})
    growth = budget(project, "10.00", name="growth", scope={"tag": {"team": ["growth"]}})
    whole = budget(project, "10.00", name="whole")
    spend(api, "6.00", datetime(2026, 10, 3, tzinfo=UTC), feature="search", tags={"team": "platform"})
    spend(api, "5.00", datetime(2026, 10, 3, tzinfo=UTC), feature="chat", tags={"team": "growth"})
    series = daily_spend(
        [SpendRequest(b.pk, project.pk, ZoneInfo("UTC"), b.scope, window_of(b, OCT).first_day)
         for b in (search, growth, whole)],
        OCT,
    )  # fmt: skip
    assert measure(search, series[search.pk], OCT).spend == Decimal("6")
    assert measure(growth, series[growth.pk], OCT).spend == Decimal("5")
    assert measure(whole, series[whole.pk], OCT).spend == Decimal("11")


def test_tag_budgets_in_several_zones_share_one_scan_and_keep_their_own_days(project: Project, api: APIClient) -> None:
    utc = budget(project, "100.00", name="utc", scope={"tag": {"team": ["growth"]}})
    berlin = budget(project, "100.00", name="berlin", timezone="Europe/Berlin", scope={"tag": {"team": ["growth"]}})
    spend(api, "5.00", datetime(2026, 10, 31, 22, 30, tzinfo=UTC), tags={"team": "growth"})  # Oct 31 in both
    spend(api, "3.00", datetime(2026, 10, 31, 23, 15, tzinfo=UTC), tags={"team": "growth"})  # Nov 1 in Berlin
    spend(api, "7.00", datetime(2026, 10, 31, 23, 20, tzinfo=UTC), tags={"team": "platform"})
    now = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    requests = [SpendRequest(b.pk, project.pk, ZoneInfo(b.timezone), b.scope, window_of(b, now).first_day)
                for b in (utc, berlin)]  # fmt: skip
    series = daily_spend(requests, now)
    assert measure(utc, series[utc.pk], now).spend == Decimal("8")
    assert measure(berlin, series[berlin.pk], now).spend == Decimal("3")


def test_budget_in_its_own_time_zone_counts_its_local_month(project: Project, api: APIClient) -> None:
    berlin = budget(project, "100.00", timezone="Europe/Berlin")
    # 23:30 UTC on Sep 30 is already October 1st in Berlin; 23:30 UTC on Oct 31 is November there
    spend(api, "55.00", datetime(2026, 9, 30, 23, 30, tzinfo=UTC))
    spend(api, "70.00", datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    evaluate_projects([project.pk], now=datetime(2026, 10, 31, 21, 0, tzinfo=UTC))  # 22:00 in Berlin
    october = AlertState.objects.get(budget=berlin)
    assert (october.period_start, october.spend) == (datetime(2026, 9, 30, 22, tzinfo=UTC), Decimal("55"))
    evaluate_projects([project.pk], now=datetime(2026, 10, 31, 23, 45, tzinfo=UTC))  # November in Berlin
    november = AlertState.objects.filter(budget=berlin).exclude(pk=october.pk).get()
    # the month ends at local midnight, which is 23:00 UTC after the DST change on Oct 25
    assert (november.period_start, november.spend) == (datetime(2026, 10, 31, 23, tzinfo=UTC), Decimal("70"))
    assert november.period_end == datetime(2026, 11, 30, 23, tzinfo=UTC)


def _fire_in_child(budget_id: int, spend_usd: str, start_barrier: multiprocessing.synchronize.Barrier) -> None:
    connections["default"].connection = None  # never share the parent's socket
    b = Budget.objects.prefetch_related("rules__channels").get(pk=budget_id)
    window = window_of(b, OCT)
    from alerts.tasks import enqueue_deliveries

    start_barrier.wait()
    for rule in b.rules.all():
        hit = crossed(Decimal(spend_usd), b.amount, [Decimal(t) for t in rule.thresholds])
        created = fire(b, rule, (window.start, window.end), Signal.SPEND, hit, Decimal(spend_usd), None, dict, OCT)
        enqueue_deliveries(created)
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_many_threads_and_processes_deliver_each_threshold_exactly_once(project: Project, api: APIClient) -> None:
    with receiver() as hook:
        channel = Channel.objects.create(
            project=project, kind="webhook", name="hook", config={"url": hook.url, "secret": "s" * 32}
        )
        b = budget(project, "100.00", rules=[("actual", [50, 80, 100], [channel])])
        spend(api, "85.00", datetime(2026, 10, 3, tzinfo=UTC))
        budgets = list(Budget.objects.filter(pk=b.pk).prefetch_related("rules__channels"))
        # four processes (PostgreSQL only: chDB belongs to this process) and four threads (the
        # full evaluation, ClickHouse included) all decide at the same moment
        connections.close_all()
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(8)
        children = [ctx.Process(target=_fire_in_child, args=(b.pk, "85.00", barrier)) for _ in range(4)]
        for child in children:
            child.start()
        errors: list[BaseException] = []

        from alerts.tasks import enqueue_deliveries

        def evaluate() -> None:
            try:
                barrier.wait()
                enqueue_deliveries(evaluate_budgets(budgets, now=OCT).delivery_ids)
            except BaseException as exc:  # noqa: BLE001 (handed to the main thread, which re-raises it)
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=evaluate) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for child in children:
            child.join(60)
            assert child.exitcode == 0
        assert not errors
        assert states(b) == {("2026-10", 80): "fired", ("2026-10", 50): "superseded"}
        assert hook.wait_for(1, timeout=10)
        # every one of them has finished sending: exactly one request reached the receiver
        assert [r.json()["rule"]["threshold"] for r in hook.requests] == ["80"]
        assert Delivery.objects.get().status == "sent"


def test_a_budget_whose_period_cannot_be_built_does_not_stop_the_others(project: Project, api: APIClient) -> None:
    # stored before validation capped it: building this window overflows the date range
    broken = budget(project, "10.00", name="broken", period="custom", period_start=date(9999, 12, 1), period_days=60)
    good = budget(project, "100.00", name="good")
    spend(api, "85.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate_projects([project.pk], now=OCT)
    assert states(good) == {("2026-10", 80): "fired", ("2026-10", 50): "superseded"}
    assert states(broken) == {}
    other = budget(project, "100.00", name="other")
    evaluate_all(now=OCT)
    assert states(other) == {("2026-10", 80): "fired", ("2026-10", 50): "superseded"}


def test_the_period_that_just_ended_is_evaluated_during_the_grace(
    project: Project, api: APIClient, settings: object
) -> None:
    setattr(settings, "ALERTS_PERIOD_GRACE_SECONDS", 7200)  # noqa: B010 - pytest-django's settings fixture
    b = budget(project, "100.00")
    spend(api, "95.00", datetime(2026, 10, 20, tzinfo=UTC))
    evaluate_projects([project.pk], now=datetime(2026, 10, 31, 23, 59, 50, tzinfo=UTC))
    assert states(b) == {("2026-10", 80): "fired", ("2026-10", 50): "superseded"}
    # spend crosses 100 % five seconds before the month ends; the next evaluation is in November
    spend(api, "6.00", datetime(2026, 10, 31, 23, 59, 55, tzinfo=UTC))
    evaluate_projects([project.pk], now=datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC))
    october = AlertState.objects.get(budget=b, threshold=100)
    assert (october.status, october.spend, october.period_start) == (
        "fired", Decimal("101"), datetime(2026, 10, 1, tzinfo=UTC)
    )  # fmt: skip
    assert not AlertState.objects.filter(budget=b, period_start__gte=datetime(2026, 11, 1, tzinfo=UTC)).exists()
    # evaluating again in the grace fires nothing more
    evaluate_projects([project.pk], now=datetime(2026, 11, 1, 1, tzinfo=UTC))
    assert AlertState.objects.filter(budget=b).count() == 3


def test_late_spend_after_the_grace_no_longer_fires_for_the_ended_period(
    project: Project, api: APIClient, settings: object
) -> None:
    setattr(settings, "ALERTS_PERIOD_GRACE_SECONDS", 7200)  # noqa: B010 - pytest-django's settings fixture
    b = budget(project, "100.00", rules=[("actual", [100], [])])
    spend(api, "101.00", datetime(2026, 10, 31, 23, tzinfo=UTC))
    evaluate_projects([project.pk], now=datetime(2026, 11, 1, 2, 0, 1, tzinfo=UTC))
    assert states(b) == {}


def test_a_threshold_still_crossed_after_an_amount_change_takes_the_new_amount(
    project: Project, api: APIClient
) -> None:
    b = budget(project, "100.00")
    spend(api, "85.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate_projects([project.pk], now=OCT)
    Budget.objects.filter(pk=b.pk).update(amount=Decimal("160"))
    evaluate_projects([project.pk], now=OCT)  # 85 is 53 % of 160: 80 re-armed, 50 still crossed
    rows = AlertState.objects.filter(budget=b).order_by("threshold").values_list("threshold", "status", "amount")
    assert list(rows) == [(50, "superseded", Decimal("160")), (80, "rearmed", Decimal("100"))]
    # a later correction with the amount unchanged does not re-arm 50 (so it cannot fire again)
    b.refresh_from_db()
    start = window_of(b, OCT).start
    assert rearm_after_amount_change(b, start, Decimal("70"), None) == 0
    assert AlertState.objects.get(budget=b, threshold=50).status == "superseded"


def test_a_worker_holding_the_old_amount_cannot_refire_a_rearmed_threshold(project: Project, api: APIClient) -> None:
    b = budget(project, "100.00")
    spend(api, "85.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate_projects([project.pk], now=OCT)
    # a worker reads the budget and its live alerts before the amount is raised...
    stale = Budget.objects.prefetch_related("rules__channels").get(pk=b.pk)
    live = list(AlertState.objects.filter(budget=b).select_related("rule"))
    Budget.objects.filter(pk=b.pk).update(amount=Decimal("150"))
    evaluate_projects([project.pk], now=OCT)  # ...another re-arms 80 under the new amount
    assert states(b) == {("2026-10", 80): "rearmed", ("2026-10", 50): "superseded"}
    # ...then the first worker fires: it judges by the amount in force, so 80 (85 < 120) stays re-armed
    series = daily_spend([SpendRequest(b.pk, project.pk, ZoneInfo("UTC"), b.scope, window_of(b, OCT).first_day)], OCT)
    assert evaluate_one(stale, measure(stale, series[b.pk], OCT), OCT, live, []) == []
    assert not AlertState.objects.filter(budget=b, threshold=80, status="fired").exists()


def test_a_budget_whose_spend_query_is_refused_does_not_silence_its_batch(
    project: Project, api: APIClient, settings: object
) -> None:
    setattr(settings, "CLICKHOUSE_RAW_TTL_DAYS", 100)  # noqa: B010 - pytest-django's settings fixture
    now = datetime.now(UTC)
    tag = {"tag": {"team": ["growth"]}}  # tag scopes read the raw calls, which keep 100 days here
    today = now.date()
    # a long custom period reaching past the raw retention: its (batched) query is refused...
    long = budget(project, "100.00", name="long", scope=tag, period="custom",
                  period_start=today - timedelta(days=200), period_days=366)  # fmt: skip
    monthly = budget(project, "100.00", name="monthly", scope=tag)
    spend(api, "60.00", now - timedelta(minutes=1), tags={"team": "growth"})
    evaluate_projects([project.pk], now=now)
    # ...but the budget it was batched with is still evaluated
    assert AlertState.objects.get(budget=monthly).threshold == 50
    assert not AlertState.objects.filter(budget=long).exists()
