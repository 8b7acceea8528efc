"""What a path under /v1/ that names no endpoint answers: a JSON 404, as the endpoints do (not an HTML page).

``/v1/budgets/abc`` or ``/v1/budgets/-1`` (an id that is not one) is such a path. A path that only
lacks its trailing slash (``/v1/schema``) is redirected, as Django's ``APPEND_SLASH`` would.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def not_found(request: HttpRequest) -> HttpResponse:
    path = request.path_info
    if not path.endswith("/"):
        try:
            match = resolve(f"{path}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            query = request.META.get("QUERY_STRING", "")
            return HttpResponsePermanentRedirect(f"{request.path}/" + (f"?{query}" if query else ""))
    return JsonResponse({"detail": "Not found: no such endpoint (see /v1/docs/)."}, status=404)
