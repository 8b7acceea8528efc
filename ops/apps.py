from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations: health, the embedded server, demo data, the pipeline"

    def ready(self) -> None:
        from ops import pipeline

        pipeline.install()
