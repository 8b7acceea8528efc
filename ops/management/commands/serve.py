from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from waitress import serve

from ops import pipeline
from ops.embedded import EmbeddedRunner


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (``docker stop``, systemd) ends the server like Ctrl-C: the drain and schedule stop
    first, so nothing is left claimed (Python's default SIGTERM action skips every ``finally``)."""
    raise SystemExit(0)


class Command(BaseCommand):
    help = "Serve Meterline (web + API); without a broker also drains and runs the schedule in-process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)

    def handle(self, *args: Any, **options: Any) -> None:
        # The all-in-one server serves its own CSS, JavaScript and plotly.js: collect them first (quick
        # when nothing changed), before the WSGI application (and whitenoise's file index) is built.
        call_command("collectstatic", interactive=False, verbosity=0)
        from config.wsgi import application

        signal.signal(signal.SIGTERM, _exit_cleanly)
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
            self.stdout.write("Meterline stopped")
