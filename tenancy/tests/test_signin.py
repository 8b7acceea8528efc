"""Sign-in throttling: per account, per client address, on the dashboard and admin sign-in pages."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

_addresses = itertools.count(1)
PASSWORD = "right-horse-battery"


def address() -> str:
    """A client address of this test's own (the counters live in the shared Redis)."""
    n = next(_addresses)
    return f"10.{uuid.uuid4().int % 250}.{n // 250 % 250}.{n % 250}"


@pytest.fixture
def user(db: Any) -> Any:
    return get_user_model().objects.create_user(f"u-{uuid.uuid4().hex[:10]}", password=PASSWORD, is_staff=True)


def attempt(client: Client, username: str, password: str, path: str = "/accounts/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


def test_wrong_passwords_for_one_account_lock_it_with_a_clear_answer(user: Any) -> None:
    client = Client(REMOTE_ADDR=address())
    for _ in range(5):
        answer = attempt(client, user.username, "wrong")
        assert answer.status_code == 200  # the form again, "enter a correct username and password"
    # The sixth attempt is refused before the password is checked, even the right one.
    answer = attempt(Client(REMOTE_ADDR=address()), user.username, PASSWORD)
    assert answer.status_code == 429
    assert 0 < int(answer["Retry-After"]) <= 900
    assert "Too many failed sign-in attempts" in answer.content.decode()
    assert "_auth_user_id" not in answer.wsgi_request.session


def test_a_success_clears_the_account_count(user: Any) -> None:
    client = Client(REMOTE_ADDR=address())
    for _ in range(4):
        attempt(client, user.username, "wrong")
    assert attempt(client, user.username, PASSWORD).status_code == 302  # signed in
    for _ in range(4):
        assert attempt(Client(REMOTE_ADDR=address()), user.username, "wrong").status_code == 200
    assert attempt(Client(REMOTE_ADDR=address()), user.username, PASSWORD).status_code == 302


def test_many_accounts_from_one_address_lock_the_address(user: Any) -> None:
    here = address()
    for i in range(20):
        attempt(Client(REMOTE_ADDR=here), f"nobody-{uuid.uuid4().hex[:6]}-{i}", "guess")
    assert attempt(Client(REMOTE_ADDR=here), user.username, PASSWORD).status_code == 429
    assert attempt(Client(REMOTE_ADDR=address()), user.username, PASSWORD).status_code == 302  # elsewhere: fine


def test_the_admin_sign_in_is_throttled_too(user: Any) -> None:
    here = address()
    for _ in range(5):
        attempt(Client(REMOTE_ADDR=here), user.username, "wrong", path="/admin/login/")
    answer = attempt(Client(REMOTE_ADDR=address()), user.username, PASSWORD, path="/admin/login/")
    assert "Too many failed sign-in attempts" in answer.content.decode()
    assert "_auth_user_id" not in answer.wsgi_request.session


def test_forwarded_address_is_used_only_when_the_proxy_is_trusted(user: Any) -> None:
    proxy = address()
    with override_settings(TRUST_X_FORWARDED_FOR=True):
        for i in range(20):  # twenty different clients behind one proxy: each its own address
            attempt(Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"spoofed, {address()}"), f"x{i}", "guess")
        client = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=address())
        assert attempt(client, user.username, PASSWORD).status_code == 302
    # Untrusted, the header is ignored: the same twenty failures came from one address.
    for i in range(20):
        attempt(Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=address()), f"y{i}", "guess")
    late = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=address())
    assert attempt(late, user.username, PASSWORD).status_code == 429


@override_settings(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
)
def test_an_unreachable_cache_does_not_lock_everyone_out(user: Any, caplog: pytest.LogCaptureFixture) -> None:
    client = Client(REMOTE_ADDR=address())
    for _ in range(6):
        attempt(client, user.username, "wrong")
    assert attempt(client, user.username, PASSWORD).status_code == 302
    assert "cache unavailable" in caplog.text
