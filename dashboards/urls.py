from __future__ import annotations

from django.urls import path

from dashboards.views import home

urlpatterns = [path("", home, name="home")]
