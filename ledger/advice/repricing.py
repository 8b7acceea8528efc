"""Advice kinds that re-price calls: the batch tier, prompt caching, routing to a cheaper proven model."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

from ledger.advice.context import (
    CACHE_MIN_PREFIX,
    CACHE_READ_SHARE,
    CACHE_TTL_MS,
    MAX_ROWS,
    Context,
    Recommendation,
    pusd,
    total,
)
from ledger.pricing import pusd_to_usd
from ledger.whatif import Target, whatif


def _batch_selections(ctx: Context) -> list[dict[str, tuple[str, ...]]]:
    """The traffic that could have waited, as filters: eval and shadow always, and the live traffic of the
    features the project marks batch-eligible (within the query's own filters)."""
    allowed = ctx.q.filters.get("traffic", ("live", "eval", "shadow"))
    offline: tuple[str, ...] = tuple(t for t in ("eval", "shadow") if t in allowed)
    wanted = ctx.q.filters.get("feature")
    eligible = tuple(f for f in ctx.batch_features if wanted is None or f in wanted) if "live" in allowed else ()
    selections: list[dict[str, tuple[str, ...]]] = [{"traffic": offline}] if offline else []
    return [*selections, {"traffic": ("live",), "feature": eligible}] if eligible else selections


def batch(ctx: Context) -> list[Recommendation]:
    """Traffic that could wait (eval, shadow, batch-eligible live features), not streamed, at the default
    tier, re-priced at the batch tier."""
    selections = _batch_selections(ctx)
    if not selections:
        return []
    cells: dict[str, list[int]] = {}  # feature -> [calls, actual, at batch, unpriced, live calls, excluded]
    # Streamed calls and calls already at another tier cannot move: the what-if takes only the others.
    movable: dict[str, tuple[str, ...]] = {"streamed": ("false",), "service_tier": ("default",)}
    for selection in selections:
        q = replace(ctx.q, filters={**ctx.q.filters, **selection}, group_by=("feature",), granularity=None)
        live = selection["traffic"] == ("live",)
        for row in whatif(q, Target(tier="batch"), book=ctx.book, only=movable).rows:
            cell = cells.setdefault(row["feature"], [0] * 6)
            cell[0] += row["calls"]
            cell[1] += pusd(row["actual_cost"])
            cell[2] += pusd(row["whatif_cost"])
            cell[3] += row["unpriced_calls"]
            cell[4] += row["calls"] if live else 0
    offline = next((s["traffic"] for s in selections if s["traffic"] != ("live",)), ())
    eligible = next((s["feature"] for s in selections if s["traffic"] == ("live",)), ())
    src = ctx.spend
    excluded_sql = (
        f"SELECT toString(feature), {src.calls} FROM {src.table} WHERE {src.where}"  # noqa: S608 - values bound
        " AND (has({offline:Array(String)}, toString(traffic))"
        " OR (traffic = 'live' AND has({eligible:Array(String)}, toString(feature))))"
        " AND (streamed OR service_tier != 'default') GROUP BY feature"
    )
    for feature, calls in ctx.rows(excluded_sql, "batch.excluded", offline=list(offline), eligible=list(eligible)):
        cells.setdefault(feature, [0] * 6)[5] += calls
    recs = []
    for feature, (calls, actual, at_batch, unpriced, live_calls, excluded) in sorted(cells.items()):
        if unpriced:
            ctx.notes.append(f"batch: {feature}: {unpriced} calls have no batch price; not compared")
            continue
        saving = actual - at_batch
        if calls <= 0 or saving <= 0:
            continue
        traffic = ("live", *offline) if feature in eligible else offline
        scope = {"feature": feature, "traffic": ",".join(traffic)}
        recs.append(
            Recommendation(
                "batch",
                f"Run {feature}'s {'/'.join(traffic)} traffic through the batch tier",
                scope,
                saving,
                {
                    "calls": calls,
                    "excluded_calls": excluded,
                    "live_calls": live_calls,
                    "batch_eligible": feature in eligible,
                    "actual_cost": pusd_to_usd(actual),
                    "batch_cost": pusd_to_usd(at_batch),
                    "method": "savings = actual - the same calls at the batch tier: eval and shadow traffic, and"
                    " the live traffic of features the project marks batch-eligible; streamed calls and calls"
                    " not at the default tier excluded (the what-if link includes them)",
                    "whatif": ctx.whatif_link(scope, to_tier="batch"),
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return recs


def _cache_group() -> dict[str, Any]:
    return {"calls": 0, "repeats": 0, "readable": 0, "read": 0, "saving": Fraction(0), "estimated": False,
            "hashes": set()}  # fmt: skip


def prompt_cache(ctx: Context) -> list[Recommendation]:
    """Repeated long prefixes (same feature, model, prefix hash) within the cache lifetime, read uncached."""
    # Without FINAL: every stored version of a call has the same tokens and prefix, so one row per call
    # (per event and hour, the raw table's identity) is any of them.
    sql = (
        "SELECT f, m, h, p, t, ts, inp, cr, prefix, estimated FROM (SELECT any(toString(feature)) AS f,"  # noqa: S608
        " any(toString(model)) AS m, any(prompt_prefix_hash) AS h, any(toString(provider)) AS p,"
        " any(toString(service_tier)) AS t, any(toUnixTimestamp64Milli(timestamp)) AS ts, any(input_tokens) AS inp,"
        " any(cache_read_tokens) AS cr, any(prompt_prefix_tokens) AS prefix,"
        " any(prompt_prefix_tokens_estimated) AS estimated"
        f" FROM llm_calls WHERE {ctx.where} AND prompt_prefix_hash != ''"
        " AND prompt_prefix_tokens >= {min_prefix:UInt32} AND NOT cache_hit"
        f" GROUP BY event_id, toStartOfHour(timestamp)) ORDER BY f, m, h, ts LIMIT {MAX_ROWS}"
    )
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    last: dict[tuple[str, str, str], int] = {}
    pending: dict[tuple[str, str, str], Fraction] = {}  # the write premium of a window's first call
    for feature, model, prefix_hash, provider, tier, ts, inp, cr, prefix, estimated in ctx.rows(
        sql, "prompt_cache", min_prefix=CACHE_MIN_PREFIX
    ):
        key = (feature, model, prefix_hash)
        g = groups.setdefault((feature, model), _cache_group())
        price = ctx.book.price(provider, model, tier, ts)
        rates = price.rates_for(inp) if price is not None else None
        g["calls"] += 1
        g["estimated"] = g["estimated"] or bool(estimated)
        previous = last.get(key)
        last[key] = ts
        if previous is not None and ts - previous <= CACHE_TTL_MS:
            would_read = max(min(prefix, inp) - cr, 0)
            g["repeats"] += 1
            g["readable"] += min(prefix, inp)
            g["read"] += cr
            g["hashes"].add(prefix_hash)
            if rates is not None:
                g["saving"] += would_read * (Fraction(rates.input) - Fraction(rates.cache_read))
                g["saving"] -= pending.pop(key, Fraction(0))  # the window is used: its write is paid
        else:
            pending.pop(key, None)
            premium = Fraction(rates.cache_write) - Fraction(rates.input) if rates is not None else Fraction(0)
            pending[key] = max(premium, Fraction(0)) * min(prefix, inp)
    out = []
    for (feature, model), g in sorted(groups.items()):
        saving = int(g["saving"])  # rounded toward zero, to the pico-dollar
        if not g["repeats"] or g["read"] >= g["readable"] * CACHE_READ_SHARE or saving <= 0:
            continue
        scope = {"feature": feature, "model": model}
        out.append(
            Recommendation(
                "prompt_cache",
                f"Cache the repeated prompt prefix of {feature} on {model}: {g['repeats']} repeats read uncached",
                scope,
                saving,
                {
                    "calls": g["calls"],
                    "repeats_within_ttl": g["repeats"],
                    "prefixes": len(g["hashes"]),
                    "prefix_tokens_readable": g["readable"],
                    "cache_read_tokens": g["read"],
                    "prefix_tokens_estimated": g["estimated"],
                    "method": "savings = prefix tokens a repeat within 5 minutes would have read from cache x"
                    " (input - cache-read price) at each call's price, minus the cache-write premium of each"
                    f" window's first call; prefixes of at least {CACHE_MIN_PREFIX} tokens"
                    + ("; some prefix sizes were estimated by the client" if g["estimated"] else ""),
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out


def _quality(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "calls": row["calls"],
        "feedback_count": row["feedback_count"],
        "feedback_score": row["feedback_score"],
        "errors": row["errors"],
        "error_rate": row["error_rate"],
    }


FLOAT_NOISE = 1e-9


def _no_worse(candidate: dict[str, Any], dear: dict[str, Any]) -> bool:
    """Feedback score at least as high and error rate at most as high, both models with feedback."""
    if not candidate["feedback_count"] or not dear["feedback_count"]:
        return False
    # The averages are float sums divided by counts: equal scores may differ in the last bits (three
    # 0.8s average to 0.8000000000000002), which must not make a model look better or worse.
    return bool(
        candidate["feedback_score"] >= dear["feedback_score"] - FLOAT_NOISE
        and (candidate["error_rate"] or 0.0) <= (dear["error_rate"] or 0.0) + FLOAT_NOISE
    )


# Where a feature's models are compared, finest first: within one route of one routing-config version
# (the same share of the traffic), within one version, or across the whole feature.
ROUTING_LEVELS: tuple[tuple[str, ...], ...] = (("route_version", "route"), ("route_version",), ())


def _add_quality(into: dict[str, Any], row: dict[str, Any]) -> None:
    """Sum a model's figures over the slices of a finer level (the score as its sum, to average again)."""
    if not into:
        into.update(provider=row["provider"], model=row["model"], cost=0, calls=0, errors=0, feedback_count=0,
                    score_sum=0.0)  # fmt: skip
    into["cost"] += row["cost"]
    into["calls"] += row["calls"]
    into["errors"] += row["errors"]
    into["feedback_count"] += row["feedback_count"]
    into["score_sum"] += (row["feedback_score"] or 0.0) * row["feedback_count"]


def _rates(m: dict[str, Any]) -> dict[str, Any]:
    count = m["feedback_count"]
    return {**m, "error_rate": m["errors"] / m["calls"], "feedback_score": m["score_sum"] / count if count else None}


def routing(ctx: Context) -> list[Recommendation]:
    """Per feature (and route version / route), move a model's calls to the cheapest model already used
    on the same slice of traffic at no worse quality.

    The slice is the finest of :data:`ROUTING_LEVELS` at which the feature ran more than one model in
    one slice: a router that sends each route to one model is compared across routes, per version."""
    metrics = ("cost", "calls", "errors", "feedback_score", "feedback_count")
    finest = ("feature", *ROUTING_LEVELS[0], "provider", "model")
    rows = [row for row in total(ctx.q, finest, metrics, "cost") if row["calls"]]
    chosen: dict[str, tuple[tuple[str, ...], dict[tuple[str, ...], list[dict[str, Any]]]]] = {}
    for level in ROUTING_LEVELS:  # one query at the finest level; coarser ones are its sums
        slices: dict[str, dict[tuple[str, ...], dict[tuple[str, str], dict[str, Any]]]] = {}
        for row in rows:
            if row["feature"] not in chosen:
                cell = slices.setdefault(row["feature"], {}).setdefault(tuple(row[d] for d in level), {})
                _add_quality(cell.setdefault((row["provider"], row["model"]), {}), row)
        for feature, found in slices.items():
            if not level or any(len(cell) > 1 for cell in found.values()):
                chosen[feature] = (level, {k: [_rates(m) for m in v.values()] for k, v in found.items()})
    out = []
    for feature, (level, by_slice) in sorted(chosen.items()):
        for values, models in sorted(by_slice.items()):
            where = dict(zip(level, values, strict=True))
            out.extend(_route_slice(ctx, feature, where, models))
    return out


def _route_slice(
    ctx: Context, feature: str, where: dict[str, str], models: list[dict[str, Any]]
) -> list[Recommendation]:
    """The recommendations of one slice of a feature's traffic (``where``: its route version / route)."""
    if len(models) < 2:
        return []
    # The scope names what the comparison was made within; an empty version or route is no filter a
    # client can send, so it is left out of the scope (the what-if still selects exactly the slice).
    within = {d: v for d, v in where.items() if v}
    label = feature + "".join(f" {d}={v}" for d, v in within.items())
    out = []
    for dear in models:
        per_call = pusd(dear["cost"]) / dear["calls"]
        cheaper = [m for m in models if m is not dear and pusd(m["cost"]) / m["calls"] < per_call]
        if not cheaper:
            continue
        proven = [m for m in cheaper if _no_worse(m, dear)]
        if not proven:
            missing = [m["model"] for m in (dear, *cheaper) if not m["feedback_count"]]
            why = f"no feedback on {', '.join(missing)}" if missing else "no cheaper model scores as well"
            ctx.notes.append(f"routing: {label} on {dear['model']} not compared: {why}")
            continue
        scope = {"feature": feature, **within, "provider": dear["provider"], "model": dear["model"]}
        selected = {"feature": feature, **where, "provider": dear["provider"], "model": dear["model"]}
        q = replace(ctx.q, filters={**ctx.q.filters, **{k: (v,) for k, v in selected.items()}})
        best: tuple[int, dict[str, Any], Any] | None = None
        for m in proven:
            result = whatif(q, Target(provider=m["provider"], model=m["model"]), book=ctx.book).total
            if result.unpriced_calls:
                continue
            saving = result.actual_pusd - result.whatif_pusd
            if best is None or saving > best[0]:
                best = (saving, m, result)
        if best is None or best[0] <= 0:
            continue
        saving, target, result = best
        compared = ", ".join(["feature", *within])
        out.append(
            Recommendation(
                "routing",
                f"Route {label} from {dear['model']} to {target['model']}",
                scope,
                saving,
                {
                    "to_provider": target["provider"],
                    "to_model": target["model"],
                    "compared_within": ["feature", *within],
                    "calls": result.calls,
                    "actual_cost": pusd_to_usd(result.actual_pusd),
                    "whatif_cost": pusd_to_usd(result.whatif_pusd),
                    "current": _quality(dear),
                    "candidate": _quality(target),
                    "method": f"the cheapest model already used on the same {compared} whose feedback score"
                    " is no lower and error rate no higher; savings = actual - the what-if at that model",
                    "whatif": ctx.whatif_link(scope, to_provider=target["provider"], to_model=target["model"]),
                    "dashboard": ctx.dashboard("compare", {"feature": feature}),
                },
            )
        )
    return out
