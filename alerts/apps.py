from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Budgets and alerts"

    def ready(self) -> None:
        from alerts.transports.destinations import allowlist

        allowlist()  # a malformed ALERTS_ALLOWED_PRIVATE_HOSTS stops the start, like any other bad setting
