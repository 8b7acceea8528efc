from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.alerts import AlertListView
from api.budgets import BudgetDetailView, BudgetListView
from api.calls import CallsView
from api.channels import ChannelDetailView, ChannelListView, ChannelTestView
from api.feedback import FeedbackView
from api.usage import UsageView

urlpatterns = [
    path("calls", CallsView.as_view(), name="calls"),
    path("feedback", FeedbackView.as_view(), name="feedback"),
    path("usage", UsageView.as_view(), name="usage"),
    path("channels", ChannelListView.as_view(), name="channels"),
    path("channels/<int:channel_id>", ChannelDetailView.as_view(), name="channel"),
    path("channels/<int:channel_id>/test", ChannelTestView.as_view(), name="channel-test"),
    path("budgets", BudgetListView.as_view(), name="budgets"),
    path("budgets/<int:budget_id>", BudgetDetailView.as_view(), name="budget"),
    path("alerts", AlertListView.as_view(), name="alerts"),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
]
