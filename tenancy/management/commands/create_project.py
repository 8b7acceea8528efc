from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from tenancy.models import Organization, Project


class Command(BaseCommand):
    help = "Create a project (and its organization if it does not exist yet)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--organization", default="Default", help="organization name (default: Default)")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("the project name is empty")
        with transaction.atomic():
            if Project.objects.filter(name=name).exists():
                raise CommandError(f"project {name!r} already exists")
            org, _ = Organization.objects.get_or_create(name=options["organization"])
            project = Project.objects.create(organization=org, name=name)
        self.stdout.write(f"created project {project.name!r} (id {project.pk}) in {org.name!r}")
