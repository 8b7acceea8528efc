from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Sum
from django.utils import timezone

from ingest import outbox
from ingest.drain import DrainResult, drain_until_empty
from ingest.models import Batch, BatchStatus


class Command(BaseCommand):
    help = (
        "Drain the due outbox batches into ClickHouse now, then say what is left. Batches waiting out a retry "
        "backoff are not due: --now makes every pending batch due first (after an outage), --status shows the "
        "backlog, --replay-dead requeues dead ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--status", action="store_true", help="show batches by state and stop")
        parser.add_argument(
            "--now", action="store_true", help="cut every retry backoff short: drain all pending batches, not only due"
        )
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
            self.stdout.write(f"requeued {outbox.replay_dead()} dead batch(es)")
        if options["now"]:
            self.stdout.write(f"{outbox.make_due_now()} batch(es) in retry backoff made due now")
        result = drain_until_empty(deadline_seconds=options["seconds"])
        self.stdout.write(
            f"drained {result.batches} batch(es), {result.records} record(s); {result.failed} failed"
            + (" (see drain --status and the log)" if result.failed else "")
        )
        self.stdout.write(self._left(result))

    def _left(self, result: DrainResult) -> str:
        """One true sentence about what this drain left behind."""
        now = timezone.now()
        left = outbox.backlog(now)
        parts = []
        if left.due:
            why = "a write failed" if result.failed else "out of time" if result.has_more else "accepted meanwhile"
            parts.append(f"{left.due} batch(es) still due ({why}; run drain again)")
        if left.waiting and left.next_due_at is not None:
            wait = max(0, round((left.next_due_at - now).total_seconds()))
            parts.append(
                f"{left.waiting} pending in retry backoff, the next due in {wait} s at "
                f"{left.next_due_at:%Y-%m-%d %H:%M:%S}Z (drain --now drains them at once)"
            )
        if left.held:
            parts.append(f"{left.held} being drained by another process")
        if left.dead:
            parts.append(f"{left.dead} dead (drain --status; --replay-dead)")
        return "left: " + "; ".join(parts) if parts else "left: nothing, every accepted batch is drained"
