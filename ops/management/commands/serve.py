from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from waitress import serve

from config.wsgi import application
from ops import pipeline
from ops.embedded import EmbeddedRunner


class Command(BaseCommand):
    help = "Serve Meterline (web + API); without a broker also drains and runs the schedule in-process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)

    def handle(self, *args: Any, **options: Any) -> None:
        runner = None
        if not pipeline.has_broker():
            runner = EmbeddedRunner()
            runner.start()
            self.stdout.write("embedded mode: drain and schedule run in this process")
        self.stdout.write(f"Meterline on http://{options['host']}:{options['port']}/")
        try:
            serve(
                application, host=options["host"], port=options["port"], threads=options["threads"], ident="meterline"
            )
        finally:
            if runner is not None:
                runner.stop()
