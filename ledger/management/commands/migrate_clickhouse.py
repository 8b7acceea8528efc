from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ledger.clickhouse.migrate import migrate


class Command(BaseCommand):
    help = "Apply pending ClickHouse migrations (ledger/clickhouse/migrations)."

    def handle(self, *args: Any, **options: Any) -> None:
        ran = migrate()
        for m in ran:
            self.stdout.write(f"applied {m.version:04d}_{m.name}")
        if not ran:
            self.stdout.write("ClickHouse schema is up to date")
