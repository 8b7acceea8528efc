"""Admin pages of a project: API keys, members and their roles, price overrides, rate limits, the advisor's settings.

Only admins reach these (``@project_page("manage")``). A new key's secret is shown once, on the
page that created it, and never stored; a new member's first password likewise.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse

from ledger.limits import DIMENSIONS as LIMIT_DIMENSIONS
from ledger.limits import MAX_POOL_MODELS, clash
from ledger.models import PriceOverride, RateLimit, RepriceJob
from ledger.reprice_jobs import start_reprice
from tenancy.forms import BatchFeaturesForm
from tenancy.models import ApiKey, Membership, Project, Role, Scope
from web.frame import ProjectContext, project_page, render_page


class KeyForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="What uses it, e.g. 'checkout service'.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, initial=[Scope.INGEST]
    )


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class PriceForm(forms.ModelForm):
    reprice = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Also recompute the cost of calls already stored since the effective date.",
    )

    class Meta:
        model = PriceOverride
        fields = (
            "provider",
            "model",
            "effective_from",
            "input_per_mtok",
            "output_per_mtok",
            "cache_read_per_mtok",
            "cache_write_per_mtok",
            "reasoning_per_mtok",
            "note",
        )
        labels: ClassVar = {
            "input_per_mtok": "Input, USD per million tokens",
            "output_per_mtok": "Output, USD per million tokens",
            "cache_read_per_mtok": "Cache read (empty: input price)",
            "cache_write_per_mtok": "Cache write (empty: input price)",
            "reasoning_per_mtok": "Reasoning (empty: output price)",
            "effective_from": "Effective from (UTC)",
        }


def _id(value: str | None) -> int:
    """A posted row id, or 0 (matches nothing) when it is not a number."""
    return int(value) if value and value.isdigit() and len(value) < 19 else 0


def _back(name: str, project: Project) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse(name, kwargs={"project_id": project.pk}))


@project_page("manage")
def keys_view(ctx: ProjectContext) -> HttpResponse:
    request, project = ctx.request, ctx.project
    form = KeyForm()
    if request.method == "POST":
        if "revoke" in request.POST:
            key = ApiKey.objects.filter(project=project, pk=_id(request.POST.get("revoke"))).first()
            if key is not None:
                key.revoke()
                messages.success(request, f"Key {key.prefix}… revoked; requests with it now get 401.")
            return _back("dashboards:keys", project)
        form = KeyForm(request.POST)
        if form.is_valid():
            key, raw = ApiKey.issue(project, form.cleaned_data["scopes"], form.cleaned_data["name"])
            return render_page(ctx, "dashboards/key_created.html", {"key": key, "raw": raw})
    keys = ApiKey.objects.filter(project=project).order_by("-created_at")
    return render_page(ctx, "dashboards/keys.html", {"keys": keys, "form": form})


@project_page("manage")
def members_view(ctx: ProjectContext) -> HttpResponse:
    request, project = ctx.request, ctx.project
    org = project.organization
    form = MemberForm()
    if request.method == "POST":
        if "remove" in request.POST or "role_for" in request.POST:
            member = Membership.objects.filter(
                organization=org, pk=_id(request.POST.get("remove") or request.POST.get("role_for"))
            ).first()
            if member is None:
                messages.error(request, "No such member.")
            elif member.user_id == request.user.pk:
                messages.error(request, "You cannot change or remove your own membership.")
            elif "remove" in request.POST:
                member.delete()
                messages.success(request, f"{member.user} removed.")
            elif request.POST.get("role") in Role.values:
                member.role = request.POST["role"]
                member.save(update_fields=["role"])
                messages.success(request, f"{member.user} is now {member.get_role_display().lower()}.")
            return _back("dashboards:members", project)
        form = MemberForm(request.POST)
        if form.is_valid():
            user_model = get_user_model()
            with transaction.atomic():
                user, created = user_model.objects.get_or_create(username=form.cleaned_data["username"])
                password = ""
                if created:
                    password = secrets.token_urlsafe(12)
                    user.set_password(password)
                    user.save()
                _, added = Membership.objects.update_or_create(
                    user=user, organization=org, defaults={"role": form.cleaned_data["role"]}
                )
            if password:  # shown on this response only: never in a cookie, a log or the database
                return render_page(ctx, "dashboards/member_created.html", {"new_user": user, "password": password})
            messages.success(request, f"{user} {'added' if added else 'updated'}.")
            return _back("dashboards:members", project)
    members = Membership.objects.filter(organization=org).select_related("user").order_by("user__username")
    return render_page(ctx, "dashboards/members.html", {"members": members, "form": form, "roles": Role.choices})


@project_page("manage")
def prices_view(ctx: ProjectContext) -> HttpResponse:
    request, project = ctx.request, ctx.project
    initial = {
        "provider": request.GET.get("provider", ""),
        "model": request.GET.get("model", ""),
        "effective_from": datetime(2000, 1, 1, tzinfo=UTC),
    }
    form = PriceForm(initial=initial)
    if request.method == "POST":
        form = PriceForm(request.POST, instance=PriceOverride(project=project))
        if form.is_valid():
            with transaction.atomic():
                override = form.save()
                note = ""
                if form.cleaned_data["reprice"]:
                    # In the background (a task, or a thread without a broker): the page shows its progress.
                    start_reprice(
                        project.pk,
                        override.effective_from,
                        datetime.now(UTC),
                        reason=f"new price for {override.provider}/{override.model}",
                    )
                    note = " Calls since then are being repriced: the progress is shown below."
            messages.success(request, f"Price for {override.provider}/{override.model} saved.{note}")
            return _back("dashboards:prices", project)
    overrides = PriceOverride.objects.filter(project=project).order_by("provider", "model", "-effective_from")
    jobs = list(RepriceJob.objects.filter(project=project)[:5])
    return render_page(
        ctx,
        "dashboards/prices.html",
        {
            "overrides": overrides,
            "form": form,
            "zero": Decimal(0),
            "jobs": jobs,
            "jobs_running": any(j.active for j in jobs),
        },
    )


@project_page("manage")
def advisor_view(ctx: ProjectContext) -> HttpResponse:
    """The savings advisor's project settings: which live features could run through the Batch API."""
    request, project = ctx.request, ctx.project
    form = BatchFeaturesForm(instance=project)
    if request.method == "POST":
        form = BatchFeaturesForm(request.POST, instance=project)
        if form.is_valid():
            form.save()
            names = ", ".join(project.batch_eligible_features) or "none"
            messages.success(request, f"Batch-eligible live features: {names}.")
            return _back("dashboards:advisor", project)
    return render_page(ctx, "dashboards/advisor.html", {"form": form})


class LimitForm(forms.ModelForm):
    members = forms.CharField(
        required=False,
        max_length=5000,
        label="Models sharing the pool",
        help_text="Comma-separated, when several models share these limits; empty: the model above alone.",
    )

    class Meta:
        model = RateLimit
        fields = ("provider", "model", "tpm", "rpm", "itpm", "otpm")
        labels: ClassVar = {
            "model": "Model (or the pool's name)",
            "tpm": "Tokens per minute (TPM)",
            "rpm": "Requests per minute (RPM)",
            "itpm": "Input tokens per minute (ITPM)",
            "otpm": "Output tokens per minute (OTPM)",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        names = [m.strip() for m in (data.get("members") or "").split(",") if m.strip()]
        if len(set(names)) != len(names) or len(names) > MAX_POOL_MODELS:
            self.add_error("members", f"name each model once, at most {MAX_POOL_MODELS}")
        if not any(data.get(name) for name in LIMIT_DIMENSIONS):
            self.add_error("tpm", "give at least one limit: TPM, RPM, ITPM or OTPM")
        if any(data.get(name) == 0 for name in LIMIT_DIMENSIONS):
            self.add_error("tpm", "a limit is at least 1 (leave it empty for none)")
        provider, model = data.get("provider", ""), data.get("model", "")
        self.instance.pool_models = [] if names in ([], [model]) else names
        found = clash(self.instance.project, provider, model, self.instance.pool_models, self.instance.pk)
        if found and provider and model:
            self.add_error("model" if found[0] == "model" else "members", found[1])
        return data


@project_page("manage")
def limits_view(ctx: ProjectContext) -> HttpResponse:
    request, project = ctx.request, ctx.project
    form = LimitForm(instance=RateLimit(project=project))
    if request.method == "POST":
        if "delete" in request.POST:
            limit = RateLimit.objects.filter(project=project, pk=_id(request.POST.get("delete"))).first()
            if limit is not None:
                limit.delete()
                messages.success(request, f"Limit for {limit.provider}/{limit.model} removed.")
            return _back("dashboards:limits", project)
        form = LimitForm(request.POST, instance=RateLimit(project=project))
        if form.is_valid():
            limit = form.save()
            messages.success(request, f"Limit for {limit.provider}/{limit.model} saved.")
            return _back("dashboards:limits", project)
    limits = RateLimit.objects.filter(project=project).order_by("provider", "model")
    return render_page(ctx, "dashboards/limits.html", {"limits": limits, "form": form})
