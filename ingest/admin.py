from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ingest.models import Batch, BatchStatus
from ingest.outbox import replay_dead


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin[Batch]):
    list_display = ("id", "project", "status", "record_count", "attempts", "received_at", "last_error")
    list_filter = ("status", "project")
    exclude = ("payload",)
    readonly_fields = tuple(f.name for f in Batch._meta.fields if f.name != "payload")
    actions = ("replay",)

    @admin.action(description="Replay selected dead batches")
    def replay(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        count = replay_dead(queryset.filter(status=BatchStatus.DEAD).values_list("id", flat=True))
        self.message_user(request, f"{count} batch(es) queued again", messages.SUCCESS)
