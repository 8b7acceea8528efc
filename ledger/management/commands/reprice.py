from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.management.commands.rollup import when_argument
from ledger.reprice import reprice
from ledger.rollups import rollup_dirty
from tenancy.models import Project


class Command(BaseCommand):
    help = "Recompute the cost of every call in a range with the current prices, then its rollups."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True)
        parser.add_argument("--to", dest="end", required=True)
        parser.add_argument("--project", help="project name (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = when_argument(options["start"]), when_argument(options["end"])
        if start >= end:
            raise CommandError("--from must be before --to")
        projects = Project.objects.all()
        if options["project"]:
            projects = projects.filter(name=options["project"])
            if not projects.exists():
                raise CommandError(f"no project named {options['project']!r}")
        for project in projects:
            count = reprice(project.pk, start, end)
            self.stdout.write(f"{project.name}: repriced {count} call(s)")
        while rollup_dirty().has_more:
            pass
        self.stdout.write("rollups recomputed")
