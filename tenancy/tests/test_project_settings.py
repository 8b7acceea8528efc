"""Project settings in the admin: the savings advisor's batch-eligible live features."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tenancy.models import Organization, Project


@pytest.mark.django_db
def test_the_admin_sets_the_batch_eligible_features_one_per_line_or_comma_separated() -> None:
    project = Project.objects.create(organization=Organization.objects.create(name="org-admin"), name="p-admin")
    user = get_user_model().objects.create_superuser("root", password="pw-for-the-test")
    client = Client()
    client.force_login(user)
    path = f"/admin/tenancy/project/{project.pk}/change/"
    form = {
        "organization": project.organization_id,
        "name": project.name,
        "created_at_0": project.created_at.strftime("%Y-%m-%d"),
        "created_at_1": project.created_at.strftime("%H:%M:%S"),
    }
    answer = client.post(path, {**form, "batch_eligible_features": "nightly-report\ndoc-extract, nightly-report"})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    project.refresh_from_db()
    assert project.batch_eligible_features == ["nightly-report", "doc-extract"]
    refused = client.post(path, {**form, "batch_eligible_features": ",".join(f"f{i}" for i in range(101))})
    assert refused.status_code == 200
    assert "at most 100 features" in refused.content.decode()
