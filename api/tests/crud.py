"""Reusable test cases for the project-scoped /v1 resources (the idea of NetBox's ``APIViewTestCases``).

A resource's test class mixes in the cases for the methods it serves and says how to make one of
its objects (``make``, through the ORM, so the cases do not trust the API they test) and what to
send. Every case checks the same rules: no credentials is 401; a key without the scope (``read``
for reads, ``admin`` for writes) or a signed-in viewer writing is 403; another project's object is
404 and stays as it was; lists page by ``limit`` and ``cursor``.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import pytest
from django.contrib.auth.models import User
from django.db.models import Model
from rest_framework.test import APIClient

from tenancy.models import ApiKey, Membership, Organization, Project

PASSWORD = "pw-123456789"
_names = itertools.count()


def key_client(project: Project, *scopes: str) -> APIClient:
    """A client with a new API key of ``project`` carrying ``scopes``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, list(scopes))[1]}")
    return client


def user_client(project: Project, role: str, *, enforce_csrf: bool = False) -> APIClient:
    """A client signed in (a real session) as a member of the project's organization with ``role``."""
    user = User.objects.create_user(f"{role}-{next(_names)}", password=PASSWORD)
    Membership.objects.create(user=user, organization=project.organization, role=role)
    client = APIClient(enforce_csrf_checks=enforce_csrf)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def in_project(url: str, project: Project) -> str:
    """The URL as a signed-in user names the project: ``?project=<id>``."""
    return f"{url}{'&' if '?' in url else '?'}project={project.pk}"


class ProjectEndpointCase:
    """What every case needs: the list URL, the model, and a way to make an object in a project."""

    url: ClassVar[str]
    model: ClassVar[type[Model]]

    def make(self, project: Project, n: int = 0) -> int:
        """Create the ``n``-th object in ``project`` through the ORM; return its id."""
        raise NotImplementedError

    def detail(self, pk: int) -> str:
        return f"{self.url}/{pk}"

    @pytest.fixture
    def other(self, db: Any) -> Project:
        """A project of another organization."""
        org = Organization.objects.create(name=f"other-org-{next(_names)}")
        return Project.objects.create(organization=org, name=f"other-{next(_names)}")

    @pytest.fixture
    def admin(self, project: Project) -> APIClient:
        return key_client(project, "admin", "read")

    def exists(self, pk: int) -> bool:
        return self.model._default_manager.filter(pk=pk).exists()


class ListCases(ProjectEndpointCase):
    def test_list_without_credentials_is_401(self, project: Project) -> None:
        assert APIClient().get(self.url).status_code == 401
        forged = APIClient()
        forged.credentials(HTTP_AUTHORIZATION="Bearer ml_not-a-key")
        assert forged.get(self.url).status_code == 401

    def test_list_needs_the_read_scope(self, project: Project) -> None:
        denied = key_client(project, "ingest").get(self.url)
        assert denied.status_code == 403
        assert "read" in denied.json()["detail"]
        assert key_client(project, "read").get(self.url).status_code == 200

    def test_options_needs_credentials_only(self, project: Project) -> None:
        assert APIClient().options(self.url).status_code == 401
        assert key_client(project, "ingest").options(self.url).status_code == 200  # as before: no scope needed

    def test_a_signed_in_user_lists_the_project_named(self, project: Project, other: Project) -> None:
        viewer = user_client(project, "viewer")
        mine = self.make(project)
        answer = viewer.get(in_project(self.url, project))
        assert answer.status_code == 200
        assert [row["id"] for row in answer.json()["data"]] == [mine]
        assert viewer.get(self.url).status_code == 404  # no ?project=
        assert viewer.get(in_project(self.url, other)).status_code == 404  # not a member there

    def test_list_shows_only_this_projects_objects(self, project: Project, other: Project) -> None:
        theirs = self.make(other)
        mine = self.make(project)
        listed = [row["id"] for row in key_client(project, "read").get(self.url).json()["data"]]
        assert listed == [mine]
        assert theirs not in listed

    def test_list_pages_by_limit_and_cursor(self, project: Project, other: Project) -> None:
        self.make(other)
        made = {self.make(project, n) for n in range(3)}
        client = key_client(project, "read")
        whole = client.get(self.url).json()
        assert whole["next"] is None
        order = [row["id"] for row in whole["data"]]
        assert set(order) == made
        for limit in (1, 2):
            seen, cursor, pages = [], None, 0
            while True:
                params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
                page = client.get(self.url, params)
                assert page.status_code == 200, page.content
                assert 1 <= len(page.json()["data"]) <= limit
                seen += [row["id"] for row in page.json()["data"]]
                cursor, pages = page.json()["next"], pages + 1
                if cursor is None:
                    break
                assert isinstance(cursor, str)
                assert pages < len(made)
            assert seen == order  # every object once, in the list's order
            assert pages == -(-len(made) // limit)

    def test_a_signed_in_user_follows_the_cursor_with_the_project_named(self, project: Project) -> None:
        made = [self.make(project, n) for n in range(2)]
        viewer = user_client(project, "viewer")
        first = viewer.get(self.url, {"project": project.pk, "limit": 1}).json()
        rest = viewer.get(self.url, {"project": project.pk, "limit": 1, "cursor": first["next"]}).json()
        assert sorted(row["id"] for row in first["data"] + rest["data"]) == sorted(made)
        assert rest["next"] is None

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"limit": "0"}, "limit must be between 1 and 1000"),
            ({"limit": "1001"}, "limit must be between 1 and 1000"),
            ({"limit": "ten"}, "limit must be between 1 and 1000"),
            ({"limit": "-1"}, "limit must be between 1 and 1000"),
            ({"cursor": "not a cursor"}, "cursor is not valid"),
            ({"cursor": "WyJ4Il0"}, "cursor is not valid"),  # a list of the wrong length
            ({"cursor": "eyJhIjoxfQ"}, "cursor is not valid"),  # an object, not a list
        ],
    )
    def test_a_bad_limit_or_cursor_is_400(self, project: Project, params: dict[str, str], message: str) -> None:
        answer = key_client(project, "read").get(self.url, params)
        assert answer.status_code == 400
        assert message in answer.json()["detail"]


class CreateCases(ProjectEndpointCase):
    def create_body(self, project: Project) -> dict[str, Any]:
        raise NotImplementedError

    def count(self, project: Project) -> int:
        return self.model._default_manager.filter(**{self.project_path: project}).count()

    project_path: ClassVar[str] = "project"

    def test_create_without_credentials_is_401(self, project: Project) -> None:
        assert APIClient().post(self.url, self.create_body(project), format="json").status_code == 401
        assert self.count(project) == 0

    def test_create_needs_the_admin_scope(self, project: Project) -> None:
        denied = key_client(project, "read", "ingest").post(self.url, self.create_body(project), format="json")
        assert denied.status_code == 403
        assert "admin" in denied.json()["detail"]
        viewer = user_client(project, "viewer")
        assert viewer.post(in_project(self.url, project), self.create_body(project), format="json").status_code == 403
        assert self.count(project) == 0

    def test_create_answers_201_with_the_new_object(self, project: Project, admin: APIClient) -> None:
        created = admin.post(self.url, self.create_body(project), format="json")
        assert created.status_code == 201, created.content
        assert self.model._default_manager.filter(pk=created.json()["id"], **{self.project_path: project}).exists()
        assert admin.get(self.detail(created.json()["id"])).status_code == 200

    def test_a_signed_in_admin_creates_in_the_project_named(self, project: Project) -> None:
        created = user_client(project, "admin").post(
            in_project(self.url, project), self.create_body(project), format="json"
        )
        assert created.status_code == 201, created.content
        assert self.count(project) == 1

    def test_a_session_write_needs_the_csrf_token(self, project: Project) -> None:
        client = user_client(project, "admin", enforce_csrf=True)
        answer = client.post(in_project(self.url, project), self.create_body(project), format="json")
        assert answer.status_code == 403
        assert "CSRF" in answer.json()["detail"]
        assert self.count(project) == 0


class RetrieveCases(ProjectEndpointCase):
    def test_read_without_credentials_is_401(self, project: Project) -> None:
        assert APIClient().get(self.detail(self.make(project))).status_code == 401

    def test_read_needs_the_read_scope(self, project: Project) -> None:
        pk = self.make(project)
        assert key_client(project, "ingest").get(self.detail(pk)).status_code == 403
        answer = key_client(project, "read").get(self.detail(pk))
        assert answer.status_code == 200
        assert answer.json()["id"] == pk
        viewer = user_client(project, "viewer")
        assert viewer.get(in_project(self.detail(pk), project)).json()["id"] == pk

    def test_reading_another_projects_object_is_404(self, project: Project, other: Project, admin: APIClient) -> None:
        theirs = self.make(other)
        assert admin.get(self.detail(theirs)).status_code == 404
        signed_in = user_client(project, "admin")
        assert signed_in.get(in_project(self.detail(theirs), project)).status_code == 404
        assert signed_in.get(in_project(self.detail(theirs), other)).status_code == 404
        assert admin.get(self.detail(theirs + 10_000)).status_code == 404


class UpdateCases(ProjectEndpointCase):
    update_body: ClassVar[dict[str, Any]]

    def state(self, pk: int) -> dict[str, Any]:
        return dict(self.model._default_manager.filter(pk=pk).values().get())

    def test_update_without_credentials_is_401(self, project: Project) -> None:
        pk = self.make(project)
        before = self.state(pk)
        assert APIClient().patch(self.detail(pk), self.update_body, format="json").status_code == 401
        assert self.state(pk) == before

    def test_update_needs_the_admin_scope(self, project: Project) -> None:
        pk = self.make(project)
        before = self.state(pk)
        denied = key_client(project, "read", "ingest").patch(self.detail(pk), self.update_body, format="json")
        assert denied.status_code == 403
        assert "admin" in denied.json()["detail"]
        viewer = user_client(project, "viewer")
        assert viewer.patch(in_project(self.detail(pk), project), self.update_body, format="json").status_code == 403
        assert self.state(pk) == before

    def test_updating_another_projects_object_is_404(self, project: Project, other: Project, admin: APIClient) -> None:
        theirs = self.make(other)
        before = self.state(theirs)
        assert admin.patch(self.detail(theirs), self.update_body, format="json").status_code == 404
        signed_in = user_client(project, "admin")
        answer = signed_in.patch(in_project(self.detail(theirs), project), self.update_body, format="json")
        assert answer.status_code == 404
        assert self.state(theirs) == before

    def test_update_changes_the_fields_given(self, project: Project, admin: APIClient) -> None:
        pk = self.make(project)
        answer = admin.patch(self.detail(pk), self.update_body, format="json")
        assert answer.status_code == 200, answer.content
        for body in (answer.json(), admin.get(self.detail(pk)).json()):
            assert {key: body[key] for key in self.update_body} == self.update_body

    def test_put_is_not_allowed(self, project: Project, admin: APIClient) -> None:
        pk = self.make(project)
        assert admin.put(self.detail(pk), self.update_body, format="json").status_code == 405


class DeleteCases(ProjectEndpointCase):
    def test_delete_without_credentials_is_401(self, project: Project) -> None:
        pk = self.make(project)
        assert APIClient().delete(self.detail(pk)).status_code == 401
        assert self.exists(pk)

    def test_delete_needs_the_admin_scope(self, project: Project) -> None:
        pk = self.make(project)
        assert key_client(project, "read", "ingest").delete(self.detail(pk)).status_code == 403
        assert user_client(project, "viewer").delete(in_project(self.detail(pk), project)).status_code == 403
        assert self.exists(pk)

    def test_deleting_another_projects_object_is_404(self, project: Project, other: Project, admin: APIClient) -> None:
        theirs = self.make(other)
        assert admin.delete(self.detail(theirs)).status_code == 404
        assert user_client(project, "admin").delete(in_project(self.detail(theirs), project)).status_code == 404
        assert self.exists(theirs)

    def test_delete_answers_204_and_the_object_is_gone(self, project: Project, admin: APIClient) -> None:
        pk = self.make(project)
        answer = admin.delete(self.detail(pk))
        assert answer.status_code == 204
        assert not answer.content
        assert not self.exists(pk)
        assert admin.get(self.detail(pk)).status_code == 404


class DetailActionCases(ProjectEndpointCase):
    """A POST action on one object (``<url>/<id>/<action>``): a write, so it needs ``admin``."""

    action: ClassVar[str]

    def action_url(self, pk: int) -> str:
        return f"{self.detail(pk)}/{self.action}"

    def test_action_without_credentials_is_401(self, project: Project) -> None:
        assert APIClient().post(self.action_url(self.make(project))).status_code == 401

    def test_action_needs_the_admin_scope(self, project: Project) -> None:
        pk = self.make(project)
        denied = key_client(project, "read", "ingest").post(self.action_url(pk))
        assert denied.status_code == 403
        assert "admin" in denied.json()["detail"]
        assert user_client(project, "viewer").post(in_project(self.action_url(pk), project)).status_code == 403

    def test_action_on_another_projects_object_is_404(self, project: Project, other: Project, admin: APIClient) -> None:
        theirs = self.make(other)
        assert admin.post(self.action_url(theirs)).status_code == 404
        assert user_client(project, "admin").post(in_project(self.action_url(theirs), project)).status_code == 404


class CrudCases(ListCases, CreateCases, RetrieveCases, UpdateCases, DeleteCases):
    """Every case of a resource with list, create, read, update (PATCH) and delete."""
