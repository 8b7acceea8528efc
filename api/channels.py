"""/v1/channels: alert channels (Slack, email, webhook) with masked secrets and "send test"."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.deliveries import send_test
from alerts.models import Channel
from alerts.serializers import ChannelSerializer
from api.admin_access import project_for, project_for_admin
from tenancy.authentication import ApiKeyAuthentication


class _ChannelView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    serializer_class = ChannelSerializer

    def channel(self, request: Request, channel_id: int) -> Channel:
        return get_object_or_404(Channel, pk=channel_id, project=project_for(request))


class ChannelListView(_ChannelView):
    @extend_schema(operation_id="channels_list", summary="Alert channels (secrets masked)")
    def get(self, request: Request) -> Response:
        project = project_for(request)
        channels = Channel.objects.filter(project=project).order_by("pk")
        return Response({"data": [ChannelSerializer(c).data for c in channels]})

    @extend_schema(operation_id="channels_create", summary="Create a Slack, email or webhook channel")
    def post(self, request: Request) -> Response:
        serializer = ChannelSerializer(data=request.data, context={"project": project_for(request)})
        serializer.is_valid(raise_exception=True)
        return Response(ChannelSerializer(serializer.save()).data, status=201)


class ChannelDetailView(_ChannelView):
    @extend_schema(operation_id="channels_read")
    def get(self, request: Request, channel_id: int) -> Response:
        return Response(ChannelSerializer(self.channel(request, channel_id)).data)

    @extend_schema(operation_id="channels_update", summary="Change a channel; a new config re-enables it")
    def patch(self, request: Request, channel_id: int) -> Response:
        channel = self.channel(request, channel_id)
        serializer = ChannelSerializer(channel, data=request.data, partial=True, context={"project": channel.project})
        serializer.is_valid(raise_exception=True)
        return Response(ChannelSerializer(serializer.save()).data)

    @extend_schema(operation_id="channels_delete")
    def delete(self, request: Request, channel_id: int) -> Response:
        self.channel(request, channel_id).delete()
        return Response(status=204)


class ChannelTestView(_ChannelView):
    @extend_schema(operation_id="channels_test", summary="Send a test alert through the channel now", request=None)
    def post(self, request: Request, channel_id: int) -> Response:
        channel = get_object_or_404(Channel, pk=channel_id, project=project_for_admin(request))
        ok, detail = send_test(channel)
        channel.refresh_from_db()
        return Response({"ok": ok, "detail": detail, "channel": ChannelSerializer(channel).data}, status=200)
