from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from api.advice import AdviceView
from api.alerts import AlertViewSet
from api.budgets import BudgetViewSet
from api.calls import CallsView
from api.capacity import CapacityView
from api.channels import ChannelViewSet
from api.exports import FocusExportView
from api.fallback import not_found
from api.feedback import FeedbackView
from api.limits import RateLimitViewSet
from api.otlp import OtlpTracesView
from api.usage import UsageView
from api.whatif import WhatIfView

router = SimpleRouter(trailing_slash=False, use_regex_path=False)  # <int:…> ids, as path() writes them
router.register("channels", ChannelViewSet, basename="channel")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("alerts", AlertViewSet, basename="alert")
router.register("limits", RateLimitViewSet, basename="limit")

urlpatterns = [
    path("calls", CallsView.as_view(), name="calls"),
    path("otlp/v1/traces", OtlpTracesView.as_view(), name="otlp-traces"),
    path("feedback", FeedbackView.as_view(), name="feedback"),
    path("usage", UsageView.as_view(), name="usage"),
    path("whatif", WhatIfView.as_view(), name="whatif"),
    path("advice", AdviceView.as_view(), name="advice"),
    path("exports/focus", FocusExportView.as_view(), name="exports-focus"),
    path("capacity", CapacityView.as_view(), name="capacity"),
    *router.urls,
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    re_path(r"", not_found),  # last: any other path under /v1/ is a JSON 404
]
