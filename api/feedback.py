"""POST /v1/feedback: a quality signal for one call."""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.answers import FeedbackAccepted
from api.bodies import DjangoRefusalsAsJson
from ingest import dispatch
from ledger.models import Feedback
from tenancy.authentication import ApiKeyAuthentication, CachedKeys, CanIngest, KeyPrincipal


class FeedbackSerializer(serializers.Serializer[Feedback]):
    event_id = serializers.CharField(max_length=64)
    score = serializers.FloatField(min_value=-1e6, max_value=1e6)
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def validate_score(self, value: float) -> float:
        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


class FeedbackView(CachedKeys, DjangoRefusalsAsJson, APIView):
    authentication_classes = (ApiKeyAuthentication,)
    permission_classes = (CanIngest,)

    @extend_schema(
        operation_id="feedback",
        summary="Attach a quality score to a call",
        request=FeedbackSerializer,
        responses={202: FeedbackAccepted},
    )
    def post(self, request: Request) -> Response:
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not isinstance(request.user, KeyPrincipal):  # CanIngest lets only API keys through
            raise NotAuthenticated()
        Feedback.objects.create(project=request.user.project, **serializer.validated_data)
        dispatch.batch_accepted()  # the drain also copies feedback to ClickHouse
        return Response(serializer.data, status=202)
