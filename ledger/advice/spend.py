"""Advice kinds that are spend the ledger already holds: retries, failed calls, non-live traffic, cut answers."""

from __future__ import annotations

from ledger.advice.context import MAX_TOKENS_SLACK, Context, Recommendation, pusd, total
from ledger.pricing import pusd_to_usd


def retries(ctx: Context) -> list[Recommendation]:
    """Spend on retries (attempt > 1) by feature and model: the spend itself is what fewer retries save."""
    out = []
    for row in total(ctx.q, ("feature", "model"), ("retry_cost", "retries", "calls"), "retry_cost"):
        cost = pusd(row["retry_cost"])
        if row["retries"] == 0:
            continue
        scope = {"feature": row["feature"], "model": row["model"]}
        out.append(
            Recommendation(
                "retries",
                f"Retries of {row['feature']} on {row['model']}: {row['retries']} of {row['calls']} calls",
                scope,
                cost,
                {
                    "retries": row["retries"],
                    "calls": row["calls"],
                    "retry_cost": pusd_to_usd(cost),
                    "method": "savings = the spend on calls with attempt > 1 (an upper bound)",
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out


def errors(ctx: Context) -> list[Recommendation]:
    """Spend on failed calls by feature, model and error_type."""
    src = ctx.spend
    sql = (
        f"SELECT toString(feature), toString(model), toString(error_type), {src.calls}, {src.cost}"  # noqa: S608
        f" FROM {src.table} WHERE {src.where} AND status != 'ok'"
        " GROUP BY feature, model, error_type ORDER BY 5 DESC, 4 DESC, 1, 2, 3 LIMIT 1000"
    )
    out = []
    for feature, model, error_type, calls, cost in ctx.rows(sql, "errors"):
        scope = {"feature": feature, "model": model}
        cause = error_type or "unknown"
        out.append(
            Recommendation(
                "errors",
                f"Failed calls of {feature} on {model}: {calls} × {cause}",
                {**scope, "error_type": cause},
                int(cost),
                {
                    "failed_calls": calls,
                    "error_type": error_type,
                    "cost": pusd_to_usd(int(cost)),
                    "method": "savings = the spend on calls whose status is not ok (an upper bound)",
                    "dashboard": ctx.dashboard("calls", scope),
                },
            )
        )
    return out


def eval_shadow(ctx: Context) -> list[Recommendation]:
    """Spend on non-live (eval, shadow) traffic by feature."""
    out = []
    for row in total(ctx.q, ("feature", "traffic"), ("cost", "calls"), "cost"):
        if row["traffic"] == "live" or row["calls"] == 0:
            continue
        scope = {"feature": row["feature"], "traffic": row["traffic"]}
        cost = pusd(row["cost"])
        out.append(
            Recommendation(
                "eval_shadow",
                f"{row['traffic'].capitalize()} traffic of {row['feature']}: {row['calls']} calls",
                scope,
                cost,
                {
                    "calls": row["calls"],
                    "cost": pusd_to_usd(cost),
                    "method": "savings = the spend on this non-live traffic (an upper bound: run less of it)",
                    "whatif": ctx.whatif_link(scope, to_tier="batch"),
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out


def output_length(ctx: Context) -> list[Recommendation]:
    """Spend on calls cut at max_tokens plus the retries after them in the trace; max_tokens far above p99.

    The retries are read from the raw table without FINAL: the fields that select them (trace, attempt,
    finish_reason, time) are the same in every stored version of a call, so each call is taken once
    (per event and hour, the raw table's identity) with its newest version's cost."""
    src = ctx.spend
    cut_sql = (
        f"SELECT toString(feature), toString(model), {src.calls}, {src.cost}"  # noqa: S608
        f" FROM {src.table} WHERE {src.where} AND finish_reason = 'length' GROUP BY feature, model"
    )
    retry_sql = (
        "SELECT r.f, r.m, count(), sum(r.cost)"  # noqa: S608
        " FROM (SELECT argMax(toString(feature), version) AS f, argMax(toString(model), version) AS m,"
        " any(trace_id) AS trace, any(timestamp) AS ts, argMax(toInt128(cost_pusd), version) AS cost"
        f" FROM llm_calls WHERE {ctx.where} AND attempt > 1 AND trace_id IN (SELECT trace_id FROM llm_calls"
        f" WHERE {ctx.where} AND finish_reason = 'length' AND trace_id != '')"
        " GROUP BY event_id, toStartOfHour(timestamp)) AS r"
        " INNER JOIN (SELECT trace_id, min(timestamp) AS first_cut FROM llm_calls"
        f" WHERE {ctx.where} AND finish_reason = 'length' AND trace_id != '' GROUP BY trace_id) AS l"
        " ON r.trace = l.trace_id WHERE r.ts > l.first_cut GROUP BY r.f, r.m"
    )
    cells: dict[tuple[str, str], list[int]] = {}
    for feature, model, calls, cost in ctx.rows(cut_sql, "output_length.cut"):
        cells.setdefault((feature, model), [0, 0, 0, 0])[:2] = [calls, int(cost)]
    # Retries are counted only in traces with a cut answer: without one there is nothing to read.
    retried_rows = ctx.rows(retry_sql, "output_length.retries") if cells else []
    for feature, model, calls, cost in retried_rows:
        cells.setdefault((feature, model), [0, 0, 0, 0])[2:] = [calls, int(cost)]
    out = []
    for (feature, model), (cut, cut_cost, retried, retry_cost) in sorted(cells.items()):
        scope = {"feature": feature, "model": model}
        out.append(
            Recommendation(
                "output_length",
                f"Answers of {feature} on {model} cut at max_tokens: {cut} calls, {retried} retries after them",
                scope,
                cut_cost + retry_cost,
                {
                    "cut_calls": cut,
                    "cut_cost": pusd_to_usd(cut_cost),
                    "retries_after_cut": retried,
                    "retry_cost": pusd_to_usd(retry_cost),
                    "method": "savings = the spend on calls with finish_reason = length plus the retries"
                    " (attempt > 1) later in the same trace (an upper bound)",
                    "dashboard": ctx.dashboard("calls", scope),
                },
            )
        )
    # Evidence only: over the stored rows (a repriced call's versions, until merged, count twice: the p99 and
    # the largest max_tokens do not move).
    slack_sql = (
        "SELECT toString(feature), count(), max(max_tokens), quantileExact(0.99)(output_tokens)"  # noqa: S608
        f" FROM llm_calls WHERE {ctx.where} AND isNotNull(max_tokens) AND status = 'ok'"
        " GROUP BY feature ORDER BY 1"
    )
    for feature, calls, max_tokens, p99 in ctx.rows(slack_sql, "output_length.slack"):
        if not max_tokens or max_tokens < MAX_TOKENS_SLACK * max(int(p99), 1):
            continue
        scope = {"feature": feature}
        out.append(
            Recommendation(
                "output_length",
                f"max_tokens of {feature} ({max_tokens}) is far above its p99 output ({int(p99)})",
                scope,
                0,
                {
                    "calls": calls,
                    "max_tokens": max_tokens,
                    "p99_output_tokens": int(p99),
                    "method": f"evidence only: max_tokens at least {MAX_TOKENS_SLACK}x the p99 output costs"
                    " rate-limit headroom, not money",
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out
