"""Project API keys: stored only as a hash, revocable, scoped, and issued by management commands."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from ingest.models import Batch
from tenancy.models import KEY_PREFIX, LAST_USED_RESOLUTION, ApiKey, Organization, Project

CALL = {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 1}


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def ingest(raw_key: str) -> Any:
    return client_for(raw_key).post("/v1/calls", {"calls": [CALL]}, format="json")


def stored_row(key: ApiKey) -> str:
    """The key's database row exactly as PostgreSQL holds it, every column as text."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT row_to_json(k)::text FROM {ApiKey._meta.db_table} k WHERE id = %s", [key.pk])
        (row,) = cursor.fetchone()
    return str(row)


def apikey_updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f'UPDATE "{ApiKey._meta.db_table}"')]


# --- issuing and storing -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_issued_key_is_stored_only_as_its_sha256(project: Project) -> None:
    key, raw = ApiKey.issue(project, ["ingest"], name="ci")
    assert raw.startswith(KEY_PREFIX)
    assert len(raw) >= len(KEY_PREFIX) + 43  # 32 random bytes, URL-safe base64
    row = stored_row(key)
    assert raw not in row
    assert raw[10:] not in row  # the secret part, past the displayable prefix
    key.refresh_from_db()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert key.prefix == raw[:10]
    assert raw not in str(key)
    assert raw not in repr(key)


@pytest.mark.django_db
def test_keys_are_unique_and_only_the_exact_key_authenticates(project: Project) -> None:
    _, first = ApiKey.issue(project, ["ingest"])
    _, second = ApiKey.issue(project, ["ingest"])
    assert first != second
    assert ingest(first).status_code == 202
    assert ingest(second).status_code == 202
    same_prefix = first[:10] + "x" * (len(first) - 10)
    assert ingest(same_prefix).status_code == 401
    assert ingest(first + "x").status_code == 401
    assert ingest(first[:-1]).status_code == 401


@pytest.mark.django_db
def test_a_key_writes_to_its_own_project_only(project: Project) -> None:
    other = Project.objects.create(organization=project.organization, name=f"{project.name}-other")
    _, raw = ApiKey.issue(other, ["ingest"])
    assert ingest(raw).status_code == 202
    assert Batch.objects.filter(project=other).count() == 1
    assert not Batch.objects.filter(project=project).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("scopes", [["write"], ["ingest", "superuser"], ["INGEST"], ["ingest "]])
def test_unknown_scope_is_rejected(project: Project, scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="unknown scope") as error:
        ApiKey.issue(project, scopes)
    assert "ingest, read, admin" in str(error.value)
    assert not ApiKey.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_a_key_needs_at_least_one_scope(project: Project) -> None:
    with pytest.raises(ValueError, match="at least one scope"):
        ApiKey.issue(project, [])
    assert not ApiKey.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_scopes_are_stored_once_each_and_admin_implies_the_others(project: Project) -> None:
    key, _ = ApiKey.issue(project, ["read", "ingest", "read"])
    key.refresh_from_db()
    assert key.scopes == ["ingest", "read"]
    assert key.has_scope("ingest")
    assert not key.has_scope("admin")
    admin, _ = ApiKey.issue(project, ["admin"])
    assert all(admin.has_scope(scope) for scope in ("ingest", "read", "admin"))


@pytest.mark.django_db
@pytest.mark.parametrize(("scopes", "status"), [(["ingest"], 202), (["read"], 403), (["admin"], 202)])
def test_ingest_needs_the_ingest_scope(project: Project, scopes: list[str], status: int) -> None:
    _, raw = ApiKey.issue(project, scopes)
    assert ingest(raw).status_code == status


# --- revocation -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_revoked_key_stops_working_and_others_keep_working(project: Project) -> None:
    key, raw = ApiKey.issue(project, ["ingest"])
    _, other = ApiKey.issue(project, ["ingest"])
    assert ingest(raw).status_code == 202
    key.revoke()
    response = ingest(raw)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert ingest(other).status_code == 202
    assert not ApiKey.objects.active().filter(pk=key.pk).exists()
    assert not key.is_active


@pytest.mark.django_db
def test_revoking_twice_keeps_the_first_revocation_time(project: Project) -> None:
    key, _ = ApiKey.issue(project, ["ingest"])
    key.revoke()
    first = ApiKey.objects.get(pk=key.pk).revoked_at
    assert first is not None
    key.revoke()
    ApiKey.objects.get(pk=key.pk).revoke()
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first


# --- last_used_at ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_last_used_at_is_set_on_first_use(project: Project) -> None:
    key, raw = ApiKey.issue(project, ["ingest"])
    assert key.last_used_at is None
    before = timezone.now()
    assert ingest(raw).status_code == 202
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert before <= key.last_used_at <= timezone.now()


@pytest.mark.django_db
def test_last_used_at_is_not_rewritten_on_every_request(project: Project) -> None:
    key, raw = ApiKey.issue(project, ["ingest"])
    assert ingest(raw).status_code == 202
    key.refresh_from_db()
    first_use = key.last_used_at
    # when the key is used again within the resolution
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert ingest(raw).status_code == 202
    # then no UPDATE touched the key
    assert apikey_updates(queries) == []
    key.refresh_from_db()
    assert key.last_used_at == first_use


@pytest.mark.django_db
def test_last_used_at_moves_once_the_resolution_has_passed(project: Project) -> None:
    key, raw = ApiKey.issue(project, ["ingest"])
    stale = timezone.now() - LAST_USED_RESOLUTION - timedelta(seconds=1)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=stale)
    with CaptureQueriesContext(connection) as queries:
        assert ingest(raw).status_code == 202
    assert len(apikey_updates(queries)) == 1
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_at > stale + LAST_USED_RESOLUTION


@pytest.mark.django_db
def test_a_refused_key_does_not_touch_last_used_at(project: Project) -> None:
    key, raw = ApiKey.issue(project, ["ingest"])
    key.revoke()
    assert ingest(raw).status_code == 401
    key.refresh_from_db()
    assert key.last_used_at is None


# --- management commands -------------------------------------------------------------------------------


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_create_project_creates_it_and_its_organization(ch: object) -> None:
    output = run("create_project", "acme-chat", "--organization", "Acme")
    project = Project.objects.get(name="acme-chat")
    assert project.organization.name == "Acme"
    assert "acme-chat" in output
    assert str(project.pk) in output
    # a second project joins the existing organization
    run("create_project", "acme-search", "--organization", "Acme")
    assert Organization.objects.filter(name="Acme").count() == 1
    assert Project.objects.get(name="acme-search").organization == project.organization


@pytest.mark.django_db
def test_create_project_defaults_to_the_default_organization(ch: object) -> None:
    run("create_project", "solo")
    assert Project.objects.get(name="solo").organization.name == "Default"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "message"), [("taken", "already exists"), ("   ", "empty")])
def test_create_project_refuses_a_taken_or_empty_name(ch: object, name: str, message: str) -> None:
    run("create_project", "taken")
    with pytest.raises(CommandError, match=message):
        run("create_project", name)
    assert Project.objects.count() == 1


@pytest.mark.django_db
def test_create_api_key_prints_the_key_once_and_stores_its_hash(project: Project) -> None:
    output = run("create_api_key", "--project", project.name, "--scopes", "ingest", "--name", "ci")
    raw = output.strip()
    assert output == raw + "\n"  # the key alone, so scripts can capture it
    assert raw.startswith(KEY_PREFIX)
    key = ApiKey.objects.get(project=project)
    assert (key.name, key.scopes) == ("ci", ["ingest"])
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in stored_row(key)
    # the printed key works
    assert ingest(raw).status_code == 202


@pytest.mark.django_db
def test_create_api_key_defaults_to_ingest_and_read(project: Project) -> None:
    raw = run("create_api_key", "--project", project.name).strip()
    key = ApiKey.objects.get(project=project)
    assert key.scopes == ["ingest", "read"]
    assert ingest(raw).status_code == 202


@pytest.mark.django_db
def test_create_api_key_accepts_spaces_in_the_scope_list(project: Project) -> None:
    run("create_api_key", "--project", project.name, "--scopes", " read , admin ,")
    assert ApiKey.objects.get(project=project).scopes == ["admin", "read"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "no-such-project"], "no project named"),
        (["--scopes", "ingest,write"], "unknown scope"),
        (["--scopes", ","], "at least one scope"),
    ],
)
def test_create_api_key_refuses_bad_arguments(project: Project, args: list[str], message: str) -> None:
    full = ["--project", project.name, *args] if args[0] != "--project" else args
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *full)
    assert not ApiKey.objects.filter(project=project).exists()
