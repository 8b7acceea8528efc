"""Budget and channel pages: burn and alert history for every reader, forms for admins."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from alerts import channels as channel_config
from alerts.burn import burns
from alerts.deliveries import send_test
from alerts.models import SCOPE_DIMENSIONS, AlertState, Budget, Channel, ChannelKind, Period
from alerts.scope import describe
from alerts.scope import warnings as scope_warnings
from alerts.serializers import BudgetSerializer, ChannelSerializer
from ledger.queries import QueryError
from web.frame import ProjectContext, project_page, render_page

HISTORY = 20
RULE_KINDS = ("actual", "forecast", "anomaly")


def _errors(errors: Any, path: str = "") -> list[str]:
    """DRF's nested error structure as flat "field: message" lines (``rules[0].thresholds[1]: …``)."""

    def child(key: object) -> str:
        if key == "non_field_errors":
            return path
        if isinstance(key, int):  # an item of a list field
            return f"{path}[{key}]"
        return f"{path}.{key}" if path else str(key)

    if isinstance(errors, dict):
        return [line for key, value in errors.items() for line in _errors(value, child(key))]
    if isinstance(errors, list) and not all(isinstance(e, str) for e in errors):
        return [line for i, e in enumerate(errors) for line in _errors(e, child(i))]
    messages_ = errors if isinstance(errors, list) else [errors]
    return [f"{path}: {e}" if path else str(e) for e in messages_]


@project_page("read")
def budgets(ctx: ProjectContext) -> HttpResponse:
    items = list(Budget.objects.filter(project=ctx.project).prefetch_related("rules__channels"))
    try:
        burn = burns(items)
        burn_error = ""
    except QueryError as exc:
        burn, burn_error = {}, str(exc)
    # Each budget's latest alerts, for all budgets in one query (a window per budget), not one each.
    latest = (
        AlertState.objects.filter(budget__in=items)
        .annotate(
            nth=Window(RowNumber(), partition_by=[F("budget_id")], order_by=[F("fired_at").desc(), F("pk").desc()])
        )
        .filter(nth__lte=HISTORY)
        .select_related("rule")
        .prefetch_related("deliveries__channel")
    )
    history: dict[int, list[AlertState]] = {}
    for state in latest:
        history.setdefault(state.budget_id, []).append(state)
    rows = [
        {
            "budget": budget,
            "scope": describe(budget.scope),
            "burn": burn.get(budget.pk),
            "history": history.get(budget.pk, []),
        }
        for budget in items
    ]
    channels = Channel.objects.filter(project=ctx.project).order_by("name")
    return render_page(ctx, "alerts/budgets.html", {"rows": rows, "channels": channels, "burn_error": burn_error})


def _form_payload(post: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    for dim in SCOPE_DIMENSIONS:
        values = [v.strip() for v in post.get(f"scope_{dim}", "").split(",") if v.strip()]
        if values:
            scope[dim] = values
    tags: dict[str, list[str]] = {}
    for pair in post.get("scope_tags", "").split(","):
        if pair.strip():
            key, _, value = pair.partition("=")
            tags.setdefault(key.strip(), []).append(value.strip())
    if tags:
        scope["tag"] = tags
    channel_ids = [int(c) for c in post.getlist("channels") if c.isdigit()]
    rules = []
    for kind in RULE_KINDS:
        text = post.get(f"rule_{kind}", "").strip()
        if text:
            rules.append({"kind": kind, "thresholds": [t.strip() for t in text.split(",") if t.strip()],
                          "channels": channel_ids})  # fmt: skip
    payload: dict[str, Any] = {
        "name": post.get("name", ""),
        "amount_usd": post.get("amount_usd", ""),
        "period": post.get("period", ""),
        "timezone": post.get("timezone", "") or "UTC",
        "scope": scope,
        "rules": rules,
    }
    if payload["period"] == "custom":
        payload["period_start"] = post.get("period_start") or None
        payload["period_days"] = post.get("period_days") or None
    return payload


def _form_initial(budget: Budget | None) -> dict[str, Any]:
    if budget is None:
        return {"period": "month", "timezone": "UTC", "rule_actual": "50, 80, 100", "channels": []}
    initial: dict[str, Any] = {
        "name": budget.name,
        "amount_usd": budget.amount.normalize(),
        "period": budget.period,
        "period_start": budget.period_start.isoformat() if budget.period_start else "",
        "period_days": budget.period_days or "",
        "timezone": budget.timezone,
        "scope_tags": ", ".join(f"{k}={v}" for k, values in budget.scope.get("tag", {}).items() for v in values),
        "channels": sorted({c.pk for rule in budget.rules.all() for c in rule.channels.all()}),
    }
    for dim in SCOPE_DIMENSIONS:
        initial[f"scope_{dim}"] = ", ".join(budget.scope.get(dim, []))
    for rule in budget.rules.all():
        initial[f"rule_{rule.kind}"] = ", ".join(str(t) for t in rule.thresholds)
    return initial


def rules_fit_the_form(budget: Budget | None) -> bool:
    """The form shows one thresholds field per kind and one channel list for all rules: a budget
    with two rules of a kind, or rules with different channels, would lose rules if saved from it."""
    if budget is None:
        return True
    rules = list(budget.rules.all())
    kinds = [rule.kind for rule in rules]
    channel_sets = {frozenset(c.pk for c in rule.channels.all()) for rule in rules}
    return len(kinds) == len(set(kinds)) and len(channel_sets) <= 1


@project_page("manage")
def budget_form(ctx: ProjectContext, budget_id: int | None = None) -> HttpResponse:
    budget = None
    if budget_id is not None:
        budget = Budget.objects.filter(project=ctx.project, pk=budget_id).prefetch_related("rules__channels").first()
        if budget is None:
            raise Http404("no such budget")
    errors: list[str] = []
    values = _form_initial(budget)
    rules_editable = rules_fit_the_form(budget)
    if ctx.request.method == "POST":
        payload = _form_payload(ctx.request.POST)
        if not rules_editable:  # name, amount, period and scope only: the rules stay as they are
            payload.pop("rules")
        serializer = BudgetSerializer(budget, data=payload, context={"project": ctx.project})
        if serializer.is_valid():
            saved = serializer.save()
            messages.success(ctx.request, f"Budget {saved.name!r} saved.")
            for warning in scope_warnings(ctx.project.pk, saved.scope):
                messages.warning(ctx.request, warning)
            return HttpResponseRedirect(reverse("alerts:budgets", kwargs={"project_id": ctx.project.pk}))
        errors = _errors(serializer.errors)
        posted = ctx.request.POST
        values = {**posted.dict(), "channels": [int(c) for c in posted.getlist("channels") if c.isdigit()]}
    context = {
        "budget": budget,
        "rules_editable": rules_editable,
        "values": values,
        "errors": errors,
        "periods": Period.choices,
        "scope_fields": [(dim, values.get(f"scope_{dim}", "")) for dim in SCOPE_DIMENSIONS],
        "rule_fields": [(kind, values.get(f"rule_{kind}", "")) for kind in RULE_KINDS],
        "channels": Channel.objects.filter(project=ctx.project).order_by("name"),
    }
    return render_page(ctx, "alerts/budget_form.html", context, status=400 if errors else 200)


@require_POST
@project_page("manage")
def budget_delete(ctx: ProjectContext, budget_id: int) -> HttpResponse:
    budget = Budget.objects.filter(project=ctx.project, pk=budget_id).first()
    if budget is None:
        raise Http404("no such budget")
    budget.delete()
    messages.success(ctx.request, f"Budget {budget.name!r} deleted.")
    return HttpResponseRedirect(reverse("alerts:budgets", kwargs={"project_id": ctx.project.pk}))


def _channel_payload(post: Any) -> dict[str, Any]:
    kind = post.get("kind", "")
    config: dict[str, Any]
    if kind == "slack":
        config = {"webhook_url": post.get("webhook_url", "").strip()}
    elif kind == "webhook":
        config = {"url": post.get("url", "").strip(), "secret": post.get("secret", "")}
    else:
        config = {"to": [a.strip() for a in post.get("to", "").split(",") if a.strip()]}
    return {"kind": kind, "name": post.get("name", ""), "config": config}


@project_page("manage")
def channels(ctx: ProjectContext) -> HttpResponse:
    errors: list[str] = []
    values: dict[str, Any] = {"kind": "slack"}
    if ctx.request.method == "POST":
        serializer = ChannelSerializer(data=_channel_payload(ctx.request.POST), context={"project": ctx.project})
        if serializer.is_valid():
            channel = serializer.save()
            messages.success(ctx.request, f"Channel {channel.name!r} created.")
            return HttpResponseRedirect(reverse("alerts:channels", kwargs={"project_id": ctx.project.pk}))
        errors = _errors(serializer.errors)
        values = {k: v for k, v in ctx.request.POST.dict().items() if k not in ("secret", "webhook_url", "url")}
    listed = [
        {"channel": c, "config": channel_config.masked(c.kind, c.config)}
        for c in Channel.objects.filter(project=ctx.project).order_by("name")
    ]
    context = {"listed": listed, "errors": errors, "values": values, "kinds": ChannelKind.choices}
    return render_page(ctx, "alerts/channels.html", context, status=400 if errors else 200)


@require_POST
@project_page("manage")
def channel_test(ctx: ProjectContext, channel_id: int) -> HttpResponse:
    channel = Channel.objects.filter(project=ctx.project, pk=channel_id).first()
    if channel is None:
        raise Http404("no such channel")
    ok, detail = send_test(channel)
    if ok:
        messages.success(ctx.request, f"Test alert sent to {channel.name!r}.")
    else:
        messages.error(ctx.request, f"Test alert to {channel.name!r} failed: {detail}")
    return HttpResponseRedirect(reverse("alerts:channels", kwargs={"project_id": ctx.project.pk}))


@require_POST
@project_page("manage")
def channel_delete(ctx: ProjectContext, channel_id: int) -> HttpResponse:
    channel = Channel.objects.filter(project=ctx.project, pk=channel_id).first()
    if channel is None:
        raise Http404("no such channel")
    channel.delete()
    messages.success(ctx.request, f"Channel {channel.name!r} deleted.")
    return HttpResponseRedirect(reverse("alerts:channels", kwargs={"project_id": ctx.project.pk}))
