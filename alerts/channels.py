"""Channel configuration: validation per kind, and masking (secrets never leave whole)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from alerts.transports import destinations

MASK = "••••"
SECRET_FIELDS = {"slack": ("webhook_url",), "webhook": ("url", "secret"), "email": ()}
MAX_RECIPIENTS = 20


class ConfigError(ValueError):
    """A bad channel config; the message names the field and never echoes a secret."""


def _url(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"config.{field} is required")
    try:
        parsed = urlparse(value)
        hostname = parsed.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(f"config.{field} must be an http(s) URL") from None
    if parsed.scheme not in ("http", "https") or not hostname or len(value) > 2000:
        raise ConfigError(f"config.{field} must be an http(s) URL")
    try:
        destinations.check(value)
    except destinations.Refused:
        raise ConfigError(
            f"config.{field} must point at a public address: loopback, private, link-local and other internal"
            " addresses are refused unless the operator allows the host (ALERTS_ALLOWED_PRIVATE_HOSTS)"
        ) from None
    return value


def mask(value: str) -> str:
    """``https://hooks.slack.com/…abcd`` for URLs, ``••••abcd`` for other secrets."""
    tail = value[-4:] if len(value) >= 16 else ""
    try:
        parsed = urlparse(value)
        hostname = parsed.hostname
    except ValueError:
        return f"{MASK}{tail}"
    if parsed.scheme in ("http", "https") and hostname:
        return f"{parsed.scheme}://{hostname}/{MASK}{tail}"
    return f"{MASK}{tail}"


def masked(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {k: (mask(str(v)) if k in SECRET_FIELDS.get(kind, ()) else v) for k, v in config.items()}


def validate_config(kind: str, config: Any, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The clean config for ``kind``. With ``old`` (an update), a secret sent back masked is kept."""
    if not isinstance(config, dict):
        raise ConfigError("config must be an object")
    if old:
        config = {
            **old,
            **{k: v for k, v in config.items() if not (isinstance(v, str) and v == mask(str(old.get(k, ""))))},
        }
    if kind == "slack":
        allowed = {"webhook_url"}
        clean: dict[str, Any] = {"webhook_url": _url("webhook_url", config.get("webhook_url"))}
    elif kind == "webhook":
        allowed = {"url", "secret"}
        secret = config.get("secret")
        if not isinstance(secret, str) or len(secret) < 16 or len(secret) > 500:
            raise ConfigError("config.secret must be a string of 16 to 500 characters (the signing key)")
        clean = {"url": _url("url", config.get("url")), "secret": secret}
    elif kind == "email":
        allowed = {"to"}
        to = config.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to or len(to) > MAX_RECIPIENTS:
            raise ConfigError(f"config.to must be a list of 1 to {MAX_RECIPIENTS} email addresses")
        for address in to:
            if not isinstance(address, str):
                raise ConfigError("config.to must be a list of email addresses (strings)")
            try:
                validate_email(address)
            except ValidationError:
                raise ConfigError(f"config.to: {str(address)[:100]!r} is not an email address") from None
        clean = {"to": sorted(set(to))}
    else:
        raise ConfigError("kind must be one of slack, email, webhook")
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"config.{unknown[0]} is not a {kind} setting; known: {', '.join(sorted(allowed))}")
    return clean
