"""The landing page lists exactly the projects of the user's organizations."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tenancy.models import Membership, Organization, Project


@pytest.mark.django_db
def test_home_lists_only_the_members_projects() -> None:
    mine = Project.objects.create(organization=Organization.objects.create(name="mine-org"), name="mine")
    Project.objects.create(organization=Organization.objects.create(name="their-org"), name="theirs")
    user = get_user_model().objects.create_user("member", password="x")
    Membership.objects.create(user=user, organization=mine.organization, role="viewer")
    client = Client()
    assert client.get("/").status_code == 302  # sign in first
    client.force_login(user)
    assert client.get("/")["Location"] == f"/p/{mine.pk}/"  # the only project: straight to it
    mine_too = Project.objects.create(organization=mine.organization, name="mine-too")
    page = client.get("/").content.decode()
    assert f'href="/p/{mine.pk}/"' in page
    assert f'href="/p/{mine_too.pk}/"' in page
    assert "theirs" not in page


@pytest.mark.django_db
def test_signing_in_lands_on_the_dashboards() -> None:
    get_user_model().objects.create_user("lander", password="pw-lander")
    answer = Client().post("/accounts/login/", {"username": "lander", "password": "pw-lander"})
    assert answer.status_code == 302
    assert answer["Location"] == "/"
