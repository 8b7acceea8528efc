from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.rollups import mark_range_dirty, rollup_dirty
from ledger.timeparse import BadDate, NaiveDatetime, parse_instant
from tenancy.models import Project


def when_argument(value: str) -> datetime:
    try:
        return parse_instant(value)
    except NaiveDatetime:
        raise CommandError(f"{value!r} needs a UTC offset, e.g. {value}Z") from None
    except BadDate:  # also a well-formed but impossible date, e.g. 2026-02-30
        raise CommandError(f"{value!r} is not a date or an ISO 8601 datetime") from None


class Command(BaseCommand):
    help = "Recompute rollups: the dirty hours, or with --from/--to every hour of a range."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", help="start (inclusive), e.g. 2026-11-01 or 2026-11-01T00:00Z")
        parser.add_argument("--to", dest="end", help="end (exclusive)")
        parser.add_argument("--project", help="project name (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["start"]) != bool(options["end"]):
            raise CommandError("give both --from and --to, or neither")
        if options["start"]:
            start, end = when_argument(options["start"]), when_argument(options["end"])
            if start >= end:
                raise CommandError("--from must be before --to")
            project_id = None
            if options["project"]:
                try:
                    project_id = Project.objects.get(name=options["project"]).pk
                except Project.DoesNotExist:
                    raise CommandError(f"no project named {options['project']!r}") from None
            self.stdout.write(f"marked {mark_range_dirty(start, end, project_id)} hour(s) dirty")
        hours = projects = 0
        while True:
            result = rollup_dirty()
            hours, projects = hours + result.hours, projects + result.projects
            if not result.has_more:
                break
        self.stdout.write(f"recomputed {hours} hour(s)")
