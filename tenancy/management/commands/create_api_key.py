from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy.models import ApiKey, Project


class Command(BaseCommand):
    help = "Create an API key for a project and print it once; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--scopes", default="ingest,read", help="comma-separated: ingest,read,admin")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = Project.objects.get(name=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project named {options['project']!r}") from None
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            _, raw = ApiKey.issue(project, scopes, name=options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(raw)
