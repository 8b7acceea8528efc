from __future__ import annotations

from django import forms
from django.contrib import admin

from tenancy.forms import BatchFeaturesForm
from tenancy.models import ApiKey, Membership, Organization, Project


class ProjectForm(forms.ModelForm[Project]):
    batch_eligible_features = BatchFeaturesForm.base_fields["batch_eligible_features"]

    class Meta:
        model = Project
        fields = ("organization", "name", "created_at", "batch_eligible_features")


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    list_display = ("name", "created_at")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    form = ProjectForm
    list_display = ("name", "organization", "created_at")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ("user", "organization", "role")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ("prefix", "project", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
