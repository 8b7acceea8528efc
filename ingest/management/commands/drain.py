from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Sum

from ingest.drain import drain_until_empty
from ingest.models import Batch, BatchStatus
from ingest.outbox import replay_dead


class Command(BaseCommand):
    help = "Drain the outbox into ClickHouse now; --status shows the backlog, --replay-dead requeues dead ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--status", action="store_true", help="show batches by state and stop")
        parser.add_argument("--replay-dead", action="store_true", help="queue dead batches again, then drain")
        parser.add_argument("--seconds", type=float, default=300.0, help="time budget for draining")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["status"]:
            for row in Batch.objects.values("status").annotate(batches=Count("id"), records=Sum("record_count")):
                self.stdout.write(f"{row['status']:<11} {row['batches']:>8} batches {row['records'] or 0:>10} records")
            for batch in Batch.objects.filter(status=BatchStatus.DEAD).order_by("received_at")[:20]:
                self.stdout.write(
                    f"dead {batch.id} project={batch.project_id} attempts={batch.attempts}: {batch.last_error}"
                )
            return
        if options["replay_dead"]:
            self.stdout.write(f"requeued {replay_dead()} dead batch(es)")
        result = drain_until_empty(deadline_seconds=options["seconds"])
        self.stdout.write(
            f"drained {result.batches} batch(es), {result.records} record(s); {result.failed} failed"
            + ("; more are waiting" if result.has_more else "")
        )
