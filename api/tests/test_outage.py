"""A store that does not answer is a 503 with Retry-After on every endpoint, never a 500.

The outages are real: the Django database pointed at a PostgreSQL port where nothing listens, and
ClickHouse at a server address that refuses connections.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client, override_settings
from rest_framework.test import APIClient

from alerts.models import Channel
from tenancy.models import ApiKey, Membership, Organization, Project, Role

WEBHOOK = "https://hooks.example.com/services/T0HOOKSECRET/zzWEBHOOKzz"
SECRET = "whsec-zzSIGNINGSECRETzz"


def assert_no_secrets(log_text: str, key: str) -> None:
    for secret in (key, "T0HOOKSECRET", "zzWEBHOOKzz", "zzSIGNINGSECRETzz"):
        assert secret not in log_text


@contextmanager
def unreachable_database() -> Iterator[None]:
    conn = connections["default"]
    conn.close()
    saved = dict(conn.settings_dict)
    conn.settings_dict.update(HOST="127.0.0.1", PORT="1")
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


@pytest.fixture
def setup(transactional_db: Any, ch: Any) -> dict[str, Any]:
    org = Organization.objects.create(name="outage-org")
    project = Project.objects.create(organization=org, name="outage")
    _, key = ApiKey.issue(project, ["ingest", "read", "admin"])
    Channel.objects.create(project=project, kind="webhook", name="hook", config={"url": WEBHOOK, "secret": SECRET})
    user = get_user_model().objects.create_user("outage-admin", password="pw")
    Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
    return {"project": project, "key": key, "user": user}


def _assert_503(answer: Any) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.content[:300])
    assert answer["Retry-After"].isdigit()


API_CALLS = [
    ("post", "/v1/calls", {"calls": [{"provider": "openai", "model": "gpt-4o"}]}),
    ("post", "/v1/feedback", {"event_id": "e1", "score": 1}),
    ("get", "/v1/usage?from=2026-11-01&to=2026-11-02", None),
    ("get", "/v1/exports/focus?from=2026-11-01&to=2026-11-02", None),
    ("get", "/v1/budgets", None),
    ("post", "/v1/budgets", {"name": "b", "amount_usd": "10"}),
    ("get", "/v1/channels", None),
    ("get", "/v1/alerts", None),
]


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS)
def test_database_down_is_503_on_every_api_endpoint(
    setup: dict[str, Any], method: str, path: str, body: Any, app_log: io.StringIO
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {setup['key']}")
    with unreachable_database():
        answer = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)
    _assert_503(answer)
    assert "unavailable" in answer.json()["detail"]
    assert_no_secrets(app_log.getvalue(), setup["key"])


def test_database_down_is_503_on_pages_and_health_still_answers(setup: dict[str, Any], app_log: io.StringIO) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(setup["user"])
    page = f"/p/{setup['project'].pk}/"
    with unreachable_database():
        _assert_503(client.get(page))
        _assert_503(client.get("/v1/usage?from=2026-11-01&to=2026-11-02&project=outage"))
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
    assert client.get(page).status_code == 200  # back: the same session works again
    assert "answered 503" in app_log.getvalue() or "Service Unavailable" in app_log.getvalue()
    assert_no_secrets(app_log.getvalue(), setup["key"])


def test_clickhouse_down_is_503(setup: dict[str, Any], app_log: io.StringIO) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {setup['key']}")
    with override_settings(CLICKHOUSE_URL="http://127.0.0.1:1"):
        _assert_503(client.get("/v1/usage?from=2026-11-01&to=2026-11-02"))
        signed_in = Client(raise_request_exception=False)
        signed_in.force_login(setup["user"])
        _assert_503(signed_in.get(f"/p/{setup['project'].pk}/"))
        assert signed_in.get(f"/p/{setup['project'].pk}/budgets/channels/").status_code == 200  # no ClickHouse
    assert_no_secrets(app_log.getvalue(), setup["key"])


def test_a_database_error_quoting_a_secret_never_reaches_the_log(db: Any, app_log: io.StringIO) -> None:
    secret = "https://hooks.slack.com/services/T0SECRET/B0SECRET/zzTOPSECRETzz"
    log = logging.getLogger("meterline.test")
    try:
        with connection.cursor() as cursor:  # PostgreSQL quotes the JSON it refuses in its CONTEXT line
            cursor.execute("SELECT %s::jsonb", [f'{{"webhook_url": "{secret}", "x": "\\u0000"}}'])
    except Exception:
        log.exception("unexpected failure with ml_live_key_abcdefghijkl")
    err = app_log.getvalue()
    assert "unexpected failure" in err  # the line was written, through the configured handler
    assert "TOPSECRET" not in err
    assert "T0SECRET" not in err
    assert "ml_live_key_abcdefghijkl" not in err
