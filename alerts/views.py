"""Budget and channel pages: burn and alert history for every reader, forms for admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import messages
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from alerts import channels as channel_config
from alerts.budget_chart import chart_json, spend_chart
from alerts.burn import burns
from alerts.deliveries import send_test
from alerts.models import SCOPE_DIMENSIONS, AlertState, Budget, Channel, ChannelKind, Period
from alerts.scope import describe
from alerts.scope import warnings as scope_warnings
from alerts.serializers import BudgetSerializer, ChannelSerializer
from ledger.explore import seen_values
from ledger.queries import QueryError
from web.frame import ProjectContext, project_page, render_page

HISTORY = 20
RULE_KINDS = ("actual", "forecast", "anomaly")
RULE_LABELS = {
    "actual": "Alert when the spend reaches",
    "forecast": "Alert when the forecast for the period's end reaches",
    "anomaly": "Alert on unusual spend above",
}
RULE_HELP = {
    "actual": "percent of the amount, comma-separated (50, 80, 100). Empty: no such alert.",
    "forecast": "percent of the amount the period is on course to spend (100 = on course to overspend).",
    "anomaly": "percent of the usual (300 = three times): a day's spend against its recent days, a call's tokens"
    " against its feature's usual.",
}
SCOPE_LABELS = {
    "feature": "Features",
    "customer_id": "Customers",
    "model": "Models",
    "provider": "Providers",
    "route_version": "Route versions",
    "environment": "Environments",
}
SEEN_DAYS = 90  # the pickers offer the values seen in the last 90 days
# Which form field an error path (DRF's, flattened by _errors) belongs to.
_FIELDS = ("name", "amount_usd", "period", "timezone", "period_start", "period_days")


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


def form_errors(lines: list[str], rule_kinds: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Errors by form field (to show beside it), and the ones that belong to no single field.

    ``lines`` are :func:`_errors`' "path: message" lines; ``rules[i]`` is the i-th rule posted, whose
    kind ``rule_kinds`` gives."""
    fields: dict[str, list[str]] = {}
    general = []
    for line in lines:
        path, sep, message = line.partition(": ")
        if not sep:
            general.append(line)
            continue
        head = path.split(".")[0].split("[")[0]
        field = ""
        if head in _FIELDS:
            field = head
        elif head == "scope" and "." in path:
            dim = path.split(".")[1].split("[")[0]
            field = "scope_tags" if dim == "tag" else f"scope_{dim}"
        elif head == "rules" and path[len("rules[") :].split("]")[0].isdigit():
            i = int(path[len("rules[") :].split("]")[0])
            field = f"rule_{rule_kinds[i]}" if i < len(rule_kinds) else ""
            rest = path.split("]", 1)[1].lstrip(".")
            message = f"{rest.replace('thresholds[', 'threshold ').rstrip(']')}: {message}" if rest else message
        if field:
            fields.setdefault(field, []).append(message)
        else:
            general.append(line)
    return fields, general


def scope_pickers(project_id: int, values: dict[str, Any], errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Each scope dimension with the values seen in the project's data (to tick) and the chosen
    values never seen (in a text box)."""
    now = datetime.now(UTC)
    try:
        seen = seen_values(project_id, now - timedelta(days=SEEN_DAYS), now + timedelta(hours=1))
    except QueryError:
        seen = {}
    out = []
    for dim in SCOPE_DIMENSIONS:
        chosen = [v.strip() for v in str(values.get(f"scope_{dim}", "")).split(",") if v.strip()]
        offered = seen.get(dim, [])
        out.append(
            {
                "dim": dim,
                "label": SCOPE_LABELS[dim],
                "options": [(v, v in chosen) for v in offered],
                "other": ", ".join(v for v in chosen if v not in offered),
                "chosen": chosen,
                "errors": errors.get(f"scope_{dim}", []),
            }
        )
    return out


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
            "chart": chart_json(spend_chart(budget, burn[budget.pk])) if budget.pk in burn else "",
            "history": history.get(budget.pk, []),
        }
        for budget in items
    ]
    channels = Channel.objects.filter(project=ctx.project).order_by("name")
    return render_page(ctx, "alerts/budgets.html", {"rows": rows, "channels": channels, "burn_error": burn_error})


def _form_payload(post: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    for dim in SCOPE_DIMENSIONS:
        # the picker's boxes and the "other values" box share the name; each may hold several values
        picked = (v.strip() for given in post.getlist(f"scope_{dim}") for v in given.split(","))
        values = list(dict.fromkeys(v for v in picked if v))
        if values:
            scope[dim] = values
    tags: dict[str, list[str]] = {}
    for pair in post.get("scope_tags", "").split(","):
        if pair.strip():
            key, _, value = pair.partition("=")
            tags.setdefault(key.strip(), []).append(value.strip())
    if tags:
        scope["tag"] = tags
    every_rule = [int(c) for c in post.getlist("channels") if c.isdigit()]  # one list for all rules
    rules = []
    for kind in RULE_KINDS:
        text = post.get(f"rule_{kind}", "").strip()
        own = [int(c) for c in post.getlist(f"channels_{kind}") if c.isdigit()]
        if text:
            rules.append({"kind": kind, "thresholds": [t.strip() for t in text.split(",") if t.strip()],
                          "channels": list(dict.fromkeys(own + every_rule))})  # fmt: skip
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
    }
    for dim in SCOPE_DIMENSIONS:
        initial[f"scope_{dim}"] = ", ".join(budget.scope.get(dim, []))
    for rule in budget.rules.all():
        initial[f"rule_{rule.kind}"] = ", ".join(str(t) for t in rule.thresholds)
        initial[f"channels_{rule.kind}"] = sorted(c.pk for c in rule.channels.all())
    return initial


def rules_fit_the_form(budget: Budget | None) -> bool:
    """The form shows one thresholds field and one channel list per rule kind: a budget with two
    rules of a kind would lose one if saved from it."""
    if budget is None:
        return True
    kinds = [rule.kind for rule in budget.rules.all()]
    return len(kinds) == len(set(kinds))


@project_page("manage")
def budget_form(ctx: ProjectContext, budget_id: int | None = None) -> HttpResponse:
    budget = None
    if budget_id is not None:
        budget = Budget.objects.filter(project=ctx.project, pk=budget_id).prefetch_related("rules__channels").first()
        if budget is None:
            raise Http404("no such budget")
    errors: list[str] = []
    values: dict[str, Any] = _form_initial(budget)
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
        values = dict(posted.dict())
        for dim in SCOPE_DIMENSIONS:
            values[f"scope_{dim}"] = ", ".join(payload.get("scope", {}).get(dim, []))
        for kind in RULE_KINDS:
            own = [int(c) for c in posted.getlist(f"channels_{kind}") + posted.getlist("channels") if c.isdigit()]
            values[f"channels_{kind}"] = own
    field_errors, general = form_errors(errors, [r["kind"] for r in _form_payload(ctx.request.POST)["rules"]])
    channels = list(Channel.objects.filter(project=ctx.project).order_by("name"))
    context = {
        "budget": budget,
        "rules_editable": rules_editable,
        "values": values,
        "errors": errors,
        "general_errors": general,
        "field_errors": field_errors,
        "periods": Period.choices,
        "scope_fields": scope_pickers(ctx.project.pk, values, field_errors),
        "tags_errors": field_errors.get("scope_tags", []),
        "rule_fields": [
            {
                "kind": kind,
                "label": RULE_LABELS[kind],
                "help": RULE_HELP[kind],
                "value": values.get(f"rule_{kind}", ""),
                "errors": field_errors.get(f"rule_{kind}", []),
                "channels": [(c, c.pk in values.get(f"channels_{kind}", [])) for c in channels],
            }
            for kind in RULE_KINDS
        ],
        "channels": channels,
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


@project_page("manage")
def channel_edit(ctx: ProjectContext, channel_id: int) -> HttpResponse:
    """Rename a channel, change its address or recipients, enable or disable it; a secret left empty stays."""
    channel = Channel.objects.filter(project=ctx.project, pk=channel_id).first()
    if channel is None:
        raise Http404("no such channel")
    errors: list[str] = []
    values: dict[str, Any] = {"name": channel.name, "enabled": channel.enabled}
    if channel.kind == "email":
        values["to"] = ", ".join(channel.config.get("to", []))
    if ctx.request.method == "POST":
        post = ctx.request.POST
        payload = _channel_payload({**post.dict(), "kind": channel.kind})  # the kind cannot change
        given = {k: v for k, v in payload["config"].items() if v not in ("", [])}
        data: dict[str, Any] = {"name": payload["name"], "enabled": post.get("enabled") == "on"}
        if given:  # an empty secret or address keeps the stored one
            data["config"] = {**channel.config, **given}
        serializer = ChannelSerializer(channel, data=data, partial=True, context={"project": ctx.project})
        if serializer.is_valid():
            saved = serializer.save()
            messages.success(ctx.request, f"Channel {saved.name!r} saved.")
            return HttpResponseRedirect(reverse("alerts:channels", kwargs={"project_id": ctx.project.pk}))
        errors = _errors(serializer.errors)
        values = {"name": post.get("name", ""), "enabled": post.get("enabled") == "on", "to": post.get("to", "")}
    context = {
        "channel": channel,
        "config": channel_config.masked(channel.kind, channel.config),
        "values": values,
        "errors": errors,
    }
    return render_page(ctx, "alerts/channel_form.html", context, status=400 if errors else 200)


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
