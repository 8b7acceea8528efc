"""Form fields for project settings, shared by the admin and the project's Settings pages."""

from __future__ import annotations

from typing import Any

from django import forms

from tenancy.models import Project, validate_feature_list


class FeatureListField(forms.CharField):
    """Feature names separated by commas or new lines, as a list (blank: none)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        names: list[str] = []
        for part in text.replace(",", "\n").splitlines():
            if part.strip() and part.strip() not in names:
                names.append(part.strip())
        return names

    def validate(self, value: Any) -> None:
        validate_feature_list(value)


class BatchFeaturesForm(forms.ModelForm[Project]):
    batch_eligible_features = FeatureListField(
        required=False,
        label="Batch-eligible live features",
        help_text=Project._meta.get_field("batch_eligible_features").help_text
        + " One per line or separated by commas.",
    )

    class Meta:
        model = Project
        fields = ("batch_eligible_features",)
