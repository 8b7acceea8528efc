"""Sign-in throttling: failed attempts counted per account and per client address.

After ``LOGIN_MAX_FAILURES_PER_ACCOUNT`` failures for one user name, or
``LOGIN_MAX_FAILURES_PER_ADDRESS`` from one address, within ``LOGIN_LOCKOUT_SECONDS``, further
attempts are refused without checking the password (the message says for how long) until the
window passes. A successful sign-in clears the account's count. Both the dashboard sign-in and the
admin's use it.

Counters live in the Django cache (Redis in production, shared by every web process). A cache that
cannot be reached must not lock everyone out: the check then lets the attempt through and says so
in the log.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)
THROTTLED = "throttled"


def client_address(request: HttpRequest) -> str:
    """The client's address: the one the trusted proxy appended to X-Forwarded-For, else REMOTE_ADDR."""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded:
            return str(forwarded[-1])[:64]
    return str(request.META.get("REMOTE_ADDR", ""))[:64]


def _keys(request: HttpRequest | None, username: str) -> list[tuple[str, int]]:
    """(cache key, limit) for the account and the address of an attempt."""
    account = hashlib.sha256(username.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]
    keys = [(f"signin:fail:user:{account}", settings.LOGIN_MAX_FAILURES_PER_ACCOUNT)]
    if request is not None:
        address = hashlib.sha256(client_address(request).encode()).hexdigest()[:32]
        keys.append((f"signin:fail:addr:{address}", settings.LOGIN_MAX_FAILURES_PER_ADDRESS))
    return keys


def retry_after(request: HttpRequest | None, username: str) -> int:
    """Seconds until another attempt is allowed (0: allowed now)."""
    now = time.time()
    wait = 0.0
    try:
        for key, limit in _keys(request, username):
            count = cache.get(key)
            if count is not None and int(count) >= limit:
                wait = max(wait, float(cache.get(f"{key}:until") or now + settings.LOGIN_LOCKOUT_SECONDS) - now)
    except Exception as exc:  # noqa: BLE001 (a cache outage must not lock every user out)
        log.warning("sign-in throttle not checked: cache unavailable (%s)", type(exc).__name__)
        return 0
    return max(1, math.ceil(wait)) if wait > 0 else 0


def record_failure(request: HttpRequest | None, username: str) -> None:
    """Count one failed attempt for the account and the address: a fixed window from the first
    failure, counted with the cache's atomic increment so concurrent attempts all count."""
    now = time.time()
    window = settings.LOGIN_LOCKOUT_SECONDS
    try:
        for key, _ in _keys(request, username):
            cache.add(f"{key}:until", now + window, timeout=window)
            cache.add(key, 0, timeout=window)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr: a new window
                cache.set(key, 1, timeout=window)
    except Exception as exc:  # noqa: BLE001 (counting is protection, not a reason to fail the sign-in page)
        log.warning("sign-in failure not counted: cache unavailable (%s)", type(exc).__name__)


def clear_account(username: str) -> None:
    try:
        cache.delete(_keys(None, username)[0][0])
    except Exception as exc:  # noqa: BLE001 (see record_failure)
        log.warning("sign-in count not cleared: cache unavailable (%s)", type(exc).__name__)


def _message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (
        "Too many failed sign-in attempts for this account or from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


class _Throttled:
    """Mixin for Django's authentication forms: refuse before checking the password when throttled."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        wait = retry_after(self.request, username)
        if wait:
            self.retry_after = wait
            raise forms.ValidationError(_message(wait), code=THROTTLED)
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            record_failure(self.request, username)
            raise
        clear_account(username)
        return cleaned


class ThrottledAuthenticationForm(_Throttled, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(_Throttled, AdminAuthenticationForm):
    pass


class ThrottledLoginView(LoginView):
    """The sign-in page; a throttled attempt is answered 429 with ``Retry-After``."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        wait = getattr(form, "retry_after", 0)
        if wait:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response
