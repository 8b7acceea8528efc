from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.calls import CallsView
from api.feedback import FeedbackView
from api.usage import UsageView

urlpatterns = [
    path("calls", CallsView.as_view(), name="calls"),
    path("feedback", FeedbackView.as_view(), name="feedback"),
    path("usage", UsageView.as_view(), name="usage"),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
]
