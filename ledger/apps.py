from __future__ import annotations

from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger: pricing, ClickHouse and rollups"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from ledger.models import RateLimit

        post_save.connect(_pools_changed, sender=RateLimit, dispatch_uid="ledger.pool_days")
        post_delete.connect(_pools_changed, sender=RateLimit, dispatch_uid="ledger.pool_days")


def _pools_changed(sender: object, instance: object, **kwargs: object) -> None:
    """A limit saved or deleted may make, change or end a pool: rewrite the pools' day figures."""
    from ledger import pool_days

    project_id = getattr(instance, "project_id", None)
    if isinstance(project_id, int):
        pool_days.refresh_quietly(project_id)
