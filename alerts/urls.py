from __future__ import annotations

from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("", views.budgets, name="budgets"),
    path("new", views.budget_form, name="budget-new"),
    path("<int:budget_id>/edit", views.budget_form, name="budget-edit"),
    path("<int:budget_id>/delete", views.budget_delete, name="budget-delete"),
    path("channels/", views.channels, name="channels"),
    path("channels/<int:channel_id>/edit", views.channel_edit, name="channel-edit"),
    path("channels/<int:channel_id>/test", views.channel_test, name="channel-test"),
    path("channels/<int:channel_id>/delete", views.channel_delete, name="channel-delete"),
]
