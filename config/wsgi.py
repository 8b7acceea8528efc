from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()


def _warm() -> None:
    """Import every view now, not in the first request each worker serves (~0.5 s of CPU: the URLconf
    pulls in DRF, drf-spectacular and every app's views), then move all that was loaded out of the
    garbage collector's sight: it lives as long as the process, and full collections would walk it."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - evaluating it is the point
    gc.collect()
    gc.freeze()


_warm()
