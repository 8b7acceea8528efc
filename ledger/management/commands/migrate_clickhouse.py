from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ledger.clickhouse import cluster
from ledger.clickhouse.migrate import migrate, render


class Command(BaseCommand):
    help = (
        "Apply pending ClickHouse migrations (ledger/clickhouse/migrations); ON CLUSTER when CLICKHOUSE_CLUSTER is set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--print-sql",
            action="store_true",
            help="print every statement the migrations run under the current settings (all of them, "
            "applied or not) and exit without connecting to ClickHouse",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["print_sql"]:
            self.stdout.write(render(cluster.current()), ending="")
            return
        ran = migrate()
        for m in ran:
            self.stdout.write(f"applied {m.version:04d}_{m.name}")
        if not ran:
            self.stdout.write("ClickHouse schema is up to date")
