"""/v1/channels: alert channels (Slack, email, webhook) with masked secrets and "send test"."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import deliveries
from alerts.models import Channel
from alerts.serializers import ChannelSerializer
from api import answers
from api.viewsets import PROJECT_PARAMETER, PartialUpdateMixin, ProjectScopedViewSet


@extend_schema_view(
    list=extend_schema(
        operation_id="channels_list",
        summary="Alert channels (secrets masked)",
        parameters=[PROJECT_PARAMETER],
        responses={200: answers.Channel(many=True)},
    ),
    create=extend_schema(
        operation_id="channels_create",
        summary="Create a Slack, email or webhook channel",
        parameters=[PROJECT_PARAMETER],
        responses={201: answers.Channel},
    ),
    retrieve=extend_schema(
        operation_id="channels_read", parameters=[PROJECT_PARAMETER], responses={200: answers.Channel}
    ),
    partial_update=extend_schema(
        operation_id="channels_update",
        summary="Change a channel; a new config re-enables it",
        parameters=[PROJECT_PARAMETER],
        responses={200: answers.Channel},
    ),
    destroy=extend_schema(operation_id="channels_delete", parameters=[PROJECT_PARAMETER], responses={204: None}),
)
class ChannelViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    PartialUpdateMixin,
    mixins.DestroyModelMixin,
    ProjectScopedViewSet,
):
    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    lookup_url_kwarg = "channel_id"
    ordering = ("pk",)

    @extend_schema(
        operation_id="channels_test",
        summary="Send a test alert through the channel now",
        request=None,
        parameters=[PROJECT_PARAMETER],
        responses={200: answers.ChannelTestResult},
    )
    @action(detail=True, methods=["post"], url_path="test", url_name="test")
    def send_test(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        channel = self.get_object()
        ok, detail = deliveries.send_test(channel)
        channel.refresh_from_db()
        return Response({"ok": ok, "detail": detail, "channel": ChannelSerializer(channel).data}, status=200)
