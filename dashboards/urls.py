from __future__ import annotations

from django.urls import path

from dashboards import calls, capacity, manage, savings, views

app_name = "dashboards"

urlpatterns = [
    path("", views.home, name="home"),
    path("switch", views.switch, name="switch"),
    path("p/<int:project_id>/", views.overview_view, name="overview"),
    path("p/<int:project_id>/exports/focus.csv", views.focus_export_view, name="focus_export"),
    path("p/<int:project_id>/engineering/", views.engineering_view, name="engineering"),
    path("p/<int:project_id>/compare/", views.compare_view, name="compare"),
    path("p/<int:project_id>/customers/", views.customers_view, name="customers"),
    path("p/<int:project_id>/customers/<path:customer>/", views.customer_view, name="customer"),
    path("p/<int:project_id>/savings/", savings.savings_view, name="savings"),
    path("p/<int:project_id>/calls/", calls.calls_view, name="calls"),
    path("p/<int:project_id>/calls/<path:key>/", calls.call_view, name="call"),
    path("p/<int:project_id>/traces/<path:key>/", calls.trace_view, name="trace"),
    path("p/<int:project_id>/sessions/<path:key>/", calls.session_view, name="session"),
    path("p/<int:project_id>/requests/<path:key>/", calls.request_view, name="request"),
    path("p/<int:project_id>/settings/", manage.keys_view, name="keys"),
    path("p/<int:project_id>/settings/members/", manage.members_view, name="members"),
    path("p/<int:project_id>/prices/", manage.prices_view, name="prices"),
    path("p/<int:project_id>/settings/advisor/", manage.advisor_view, name="advisor"),
    path("p/<int:project_id>/settings/limits/", manage.limits_view, name="limits"),
    path("p/<int:project_id>/capacity/", capacity.capacity_view, name="capacity"),
]
