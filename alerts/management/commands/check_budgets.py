from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts import deliveries
from alerts.evaluate import evaluate_all, evaluate_projects
from alerts.tasks import enqueue_deliveries
from tenancy.models import Project


class Command(BaseCommand):
    help = "Evaluate budgets now (all projects, or one), fire what is crossed and send due deliveries."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="project name (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["project"]:
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                raise CommandError(f"no project named {options['project']!r}")
            report = evaluate_projects([project.pk])
        else:
            report = evaluate_all()
        enqueue_deliveries(report.delivery_ids)  # sent the way every evaluation's deliveries are
        sent = deliveries.send_due()
        self.stdout.write(
            f"evaluated {report.budgets} budget(s); {len(report.delivery_ids)} new delivery(ies); due sends: {sent}"
        )
