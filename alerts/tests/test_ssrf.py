"""SSRF through channels: non-public destinations are refused at save and at send, DNS answers are
pinned, redirects are not followed, and "send test" never shows what the receiver said.

Every server here listens on the loopback range; a destination that is not loopback is never
connected to even by a broken build (the socket opener is replaced by a recorder in those tests).
"""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.test import APIClient

from alerts import deliveries
from alerts.models import Channel, Delivery
from alerts.serializers import ChannelSerializer
from alerts.tests.helpers import budget, evaluate, spend
from alerts.transports import destinations
from alerts.transports import http as alert_http
from tenancy.models import ApiKey, Membership, Project

SECRET = "s" * 20


@pytest.fixture(autouse=True)
def strict(settings: Any) -> None:
    """The default a deployment has: no internal host allowed (the test settings allow 127.0.0.1)."""
    settings.ALERTS_ALLOWED_PRIVATE_HOSTS = []
    settings.ALERTS_HTTP_TIMEOUT_SECONDS = 2


@pytest.fixture
def admin(project: Project) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['admin'])[1]}")
    return client


# --- a loopback server that counts connections -------------------------------------------------


@dataclass
class Target:
    host: str
    port: int
    hits: int = 0
    requests: list[bytes] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    def url(self, host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}/hook"


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    ]
    length = lengths[0] if lengths else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@contextmanager
def target(
    host: str = "127.0.0.1",
    port: int = 0,
    status: int = 200,
    body: str = "ok",
    headers: tuple[tuple[str, str], ...] = (),
    mode: str = "http",
    tls: ssl.SSLContext | None = None,
) -> Iterator[Target]:
    """``mode``: "http" answers ``status``/``body``; "hang" accepts and never answers; "garbage" is not HTTP."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen()
    listener.settimeout(0.1)
    state = Target(host, listener.getsockname()[1])
    stop = threading.Event()
    if tls is not None:
        tls.sni_callback = lambda sock, name, ctx: state.server_names.append(name)

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            if tls is not None:
                try:
                    conn = tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    return
            if mode == "hang":
                stop.wait(10)
                return
            request = _read_request(conn)
            state.requests.append(request)
            if mode == "garbage":
                conn.sendall(b"garbage\r\n\r\n")
                return
            payload = body.encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
            head = f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {len(payload)}\r\n{extra}"
            conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + payload)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            state.hits += 1
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[str, ...]]]:
    """Names answered from a script (successive answers; the last one repeats), others as usual."""
    answers: dict[str, list[tuple[str, ...]]] = {}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = str(host).lower()
        if name not in answers:
            return real(host, port, *args, **kwargs)
        queue = answers[name]
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        port = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in ips
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return answers


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replaces the opener's connect with a recorder: a destination off loopback is never dialled."""
    dialled: list[Any] = []

    def record(destination: Any, wait: Any) -> socket.socket:
        dialled.append(destination)
        raise ConnectionRefusedError("not dialled in tests")

    monkeypatch.setattr(alert_http, "_open_socket", record)
    return dialled


def _config(kind: str, url: str) -> dict[str, str]:
    return {"webhook_url": url} if kind == "slack" else {"url": url, "secret": SECRET}


def _field(kind: str) -> str:
    return "config.webhook_url" if kind == "slack" else "config.url"


def _channel(project: Project, kind: str, url: str, name: str = "c") -> Channel:
    """A channel written straight to the database: no validation on the way."""
    return Channel.objects.create(project=project, kind=kind, name=name, config=_config(kind, url))


# --- every forbidden form is refused at save ---------------------------------------------------

LOOPBACK_FORMS = [
    "127.0.0.1",
    "127.0.0.2",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "0.0.0.0",  # noqa: S104 - a destination to refuse, nothing binds to it
    "0",
]
OFF_LOOPBACK_FORMS = [
    "169.254.169.254",
    "2852039166",  # 169.254.169.254 as one integer
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "[fd00::1]",
    "[fc00::1]",
    "[fe80::1]",
    "224.0.0.1",
    "[ff02::1]",
    "240.0.0.1",
    "255.255.255.255",
    "[::]",
    "[::ffff:169.254.169.254]",
    "[::ffff:10.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64 form of 169.254.169.254
    "[2002:a00:1::]",  # 6to4 form of 10.0.0.1
    "[::7f00:1]",  # IPv4-compatible 127.0.0.1
    "198.18.0.1",
    "192.0.0.8",
]


@pytest.mark.parametrize("kind", ["webhook", "slack"])
@pytest.mark.parametrize("host", LOOPBACK_FORMS + OFF_LOOPBACK_FORMS)
def test_non_public_destinations_are_refused_at_save_through_the_api(admin: APIClient, kind: str, host: str) -> None:
    answer = admin.post(
        "/v1/channels", {"kind": kind, "name": "x", "config": _config(kind, f"http://{host}:8080/x")}, format="json"
    )
    assert answer.status_code == 400, answer.json()
    message = str(answer.json()["config"])
    assert f"{_field(kind)} must point at a public address" in message
    assert "ALERTS_ALLOWED_PRIVATE_HOSTS" in message
    assert not Channel.objects.exists()


@pytest.mark.parametrize("host", ["2130706433", "[::ffff:127.0.0.1]", "169.254.169.254", "[fd12:3456::1]"])
def test_the_serializer_refuses_them_too_and_so_does_the_dashboard_form(project: Project, host: str) -> None:
    serializer = ChannelSerializer(
        data={"kind": "webhook", "name": "x", "config": _config("webhook", f"https://{host}/x")},
        context={"project": project},
    )
    assert not serializer.is_valid()
    assert "config.url must point at a public address" in str(serializer.errors["config"])
    # the dashboard's channel form goes through the same serializer
    from django.contrib.auth.models import User

    user = User.objects.create_user(f"admin-{project.pk}", password="pw-123456789")
    Membership.objects.create(user=user, organization=project.organization, role="admin")
    page = Client()
    page.force_login(user)
    answer = page.post(
        f"/p/{project.pk}/budgets/channels/", {"kind": "slack", "name": "s", "webhook_url": f"https://{host}/x"}
    )
    assert answer.status_code == 400
    assert "must point at a public address" in answer.content.decode()
    assert not Channel.objects.exists()


def test_public_addresses_and_names_that_do_not_resolve_yet_are_accepted(admin: APIClient, dns: Any) -> None:
    dns["hooks.meterline.test"] = [("93.184.216.34", "2606:2800:220:1::1")]
    for url in ("https://8.8.8.8/hook", "https://[2606:4700::1111]/hook", "https://hooks.meterline.test/x",
                "https://nothing.invalid/hook"):  # fmt: skip
        body = {"kind": "webhook", "name": url, "config": _config("webhook", url)}
        answer = admin.post("/v1/channels", body, format="json")
        assert answer.status_code == 201, (url, answer.json())


def test_a_name_is_refused_when_any_of_its_addresses_is_not_public(admin: APIClient, dns: Any) -> None:
    dns["mixed.meterline.test"] = [("93.184.216.34", "10.1.2.3")]
    answer = admin.post(
        "/v1/channels",
        {"kind": "slack", "name": "m", "config": {"webhook_url": "https://mixed.meterline.test/x"}},
        format="json",
    )
    assert answer.status_code == 400
    assert "config.webhook_url must point at a public address" in str(answer.json()["config"])
    with pytest.raises(destinations.Refused):
        destinations.resolve("https://mixed.meterline.test/x")


# --- and at send, for a row that skipped validation ---------------------------------------------


def _fire(project: Project, api: APIClient, channels: list[Channel]) -> None:
    budget(project, "100.00", rules=[("actual", [50], channels)])
    spend(api, "60.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate(project, datetime(2026, 10, 20, tzinfo=UTC))


def test_loopback_forms_written_to_the_database_are_refused_at_send_without_a_connection(
    project: Project, api: APIClient
) -> None:
    with target("127.0.0.1") as v4, target("::1", port=v4.port) as v6, target("127.0.0.2", port=v4.port) as v4b:
        made = [
            _channel(project, kind, f"http://{host}:{v4.port}/hook", name=f"{kind}-{host}")
            for kind in ("webhook", "slack")
            for host in LOOPBACK_FORMS
        ]
        _fire(project, api, made)
        rows = list(Delivery.objects.all())
        assert len(rows) == len(made)
        for channel in made:
            assert deliveries.send_test(channel) == (False, alert_http.REFUSED)
        assert (v4.hits, v6.hits, v4b.hits) == (0, 0, 0)
    assert {(d.status, d.last_error) for d in rows} == {("failed", alert_http.REFUSED)}
    for channel in made:
        channel.refresh_from_db()
        assert channel.disabled_reason == alert_http.REFUSED  # the admin sees why and must fix the URL


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_other_non_public_forms_are_refused_at_send_before_any_connection(
    project: Project, no_sockets: list[Any], kind: str
) -> None:
    for i, host in enumerate(OFF_LOOPBACK_FORMS):
        channel = _channel(project, kind, f"http://{host}/latest/meta-data/", name=str(i))
        assert deliveries.send_test(channel) == (False, alert_http.REFUSED), host
    assert no_sockets == []


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_dns_rebinding_public_at_save_loopback_at_send_is_refused(
    project: Project, admin: APIClient, dns: Any, kind: str
) -> None:
    with target("127.0.0.1") as local:
        dns["rebind.meterline.test"] = [("93.184.216.34",), ("127.0.0.1",)]
        url = f"http://rebind.meterline.test:{local.port}/hook"
        created = admin.post("/v1/channels", {"kind": kind, "name": "r", "config": _config(kind, url)}, format="json")
        assert created.status_code == 201, created.json()
        tested = admin.post(f"/v1/channels/{created.json()['id']}/test").json()
        assert (tested["ok"], tested["detail"]) == (False, alert_http.REFUSED)
        assert local.hits == 0


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_the_connection_goes_to_the_address_that_was_checked(
    project: Project, settings: Any, dns: Any, kind: str
) -> None:
    """A second DNS answer (after the check) is never used: no re-resolution when connecting."""
    settings.ALERTS_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    with target("127.0.0.1") as checked, target("127.0.0.2", port=checked.port) as other:
        dns["pin.meterline.test"] = [("127.0.0.1",), ("127.0.0.2",)]
        channel = _channel(project, kind, f"http://pin.meterline.test:{checked.port}/hook")
        assert deliveries.send_test(channel) == (True, "sent")
        assert (checked.hits, other.hits) == (1, 0)
        assert f"Host: pin.meterline.test:{checked.port}".encode() in checked.requests[0]


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_keeps_the_host_name_for_sni_and_the_certificate_check(
    project: Project, settings: Any, dns: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _certificate(tmp_path, "tls.meterline.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this one certificate
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    settings.ALERTS_ALLOWED_PRIVATE_HOSTS = ["tls.meterline.test", "other.meterline.test"]  # by name
    dns["tls.meterline.test"] = [("127.0.0.1",)]
    dns["other.meterline.test"] = [("127.0.0.1",)]
    with target("127.0.0.1", tls=server) as tls:
        good = _channel(project, "webhook", tls.url("tls.meterline.test", "https"), name="good")
        assert deliveries.send_test(good) == (True, "sent")
        wrong = _channel(project, "slack", tls.url("other.meterline.test", "https"), name="wrong")
        assert deliveries.send_test(wrong) == (False, "could not reach Slack")  # the certificate is not for it
        # allowed by name only: the same server by its address is still refused
        direct = _channel(project, "webhook", tls.url("127.0.0.1", "https"), name="direct")
        assert deliveries.send_test(direct) == (False, alert_http.REFUSED)
    assert tls.server_names == ["tls.meterline.test", "other.meterline.test"]
    assert len(tls.requests) == 1
    assert b"Host: tls.meterline.test" in tls.requests[0]


# --- the operator's allowlist ------------------------------------------------------------------


def test_allowed_internal_hosts_work_by_address_cidr_and_name(
    project: Project, admin: APIClient, settings: Any, dns: Any
) -> None:
    dns["hooks.internal.test"] = [("127.0.0.1",)]
    with target("127.0.0.1") as local, target("127.0.0.2", port=local.port) as second:
        by_address, by_cidr = local.url(), second.url()
        by_name = local.url("hooks.internal.test")
        for url in (by_address, by_cidr, by_name):
            assert admin.post("/v1/channels", {"kind": "webhook", "name": "x", "config": _config("webhook", url)},
                              format="json").status_code == 400  # fmt: skip
        settings.ALERTS_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1", "hooks.internal.test"]
        for url in (by_address, by_name):
            body = {"kind": "slack", "name": url, "config": {"webhook_url": url}}
            created = admin.post("/v1/channels", body, format="json")
            assert created.status_code == 201, created.json()
            assert admin.post(f"/v1/channels/{created.json()['id']}/test").json()["detail"] == "sent"
        assert admin.post("/v1/channels", {"kind": "slack", "name": "c", "config": {"webhook_url": by_cidr}},
                          format="json").status_code == 400  # fmt: skip
        settings.ALERTS_ALLOWED_PRIVATE_HOSTS = ["127.0.0.0/8"]
        assert deliveries.send_test(_channel(project, "webhook", by_cidr)) == (True, "sent")
        assert deliveries.send_test(_channel(project, "webhook", local.url("[::ffff:127.0.0.1]"))) == (True, "sent")
    assert (local.hits, second.hits) == (3, 1)


def test_the_allowlist_setting_is_parsed_strictly(settings: Any) -> None:
    settings.ALERTS_ALLOWED_PRIVATE_HOSTS = [" Hooks.Internal. ", "10.0.0.0/8", "[fd00::1]", "192.168.1.7"]
    names, networks = destinations.allowlist()
    assert names == {"hooks.internal"}
    assert [str(n) for n in networks] == ["10.0.0.0/8", "fd00::1/128", "192.168.1.7/32"]
    import ipaddress

    assert destinations.allowed("HOOKS.internal", ipaddress.ip_address("10.9.9.9"))
    assert destinations.allowed("x", ipaddress.ip_address("10.9.9.9"))
    assert not destinations.allowed("x", ipaddress.ip_address("169.254.169.254"))
    for bad in ("10.0.0.0/33", "http://x", "a b", "1.2.3.4.5"):
        settings.ALERTS_ALLOWED_PRIVATE_HOSTS = [bad]
        with pytest.raises(ImproperlyConfigured, match="ALERTS_ALLOWED_PRIVATE_HOSTS"):
            destinations.allowlist()
        with pytest.raises(ImproperlyConfigured, match="ALERTS_ALLOWED_PRIVATE_HOSTS"):
            apps.get_app_config("alerts").ready()  # checked when the process starts


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("93.184.216.34", True), ("2606:4700::1111", True), ("2002:808:808::", True),
     ("127.0.0.1", False), ("::1", False), ("169.254.169.254", False), ("100.64.0.1", False),
     ("100.127.255.255", False), ("fd00::1", False), ("fe80::1", False), ("224.0.0.251", False),
     ("ff02::1", False), ("::", False), ("::ffff:127.0.0.1", False),
     ("0.0.0.0", False),  # noqa: S104 - an address to refuse, nothing binds to it
     ("::ffff:8.8.8.8", False), ("64:ff9b::7f00:1", False), ("2002:7f00:1::", False), ("240.0.0.1", False),
     ("192.0.2.1", False), ("2001:db8::1", False)],
)  # fmt: skip
def test_is_public(address: str, public: bool) -> None:
    import ipaddress

    assert destinations.is_public(ipaddress.ip_address(address)) is public


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "detail"), [("webhook", "receiver answered 302"), ("slack", "Slack answered 302")])
def test_a_redirect_to_a_private_address_is_not_followed(
    project: Project, settings: Any, kind: str, detail: str
) -> None:
    settings.ALERTS_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    with target("127.0.0.2") as inner:
        location = (("Location", inner.url()),)
        with target("127.0.0.1", status=302, body="see other", headers=location) as outer:
            channel = _channel(project, kind, outer.url())
            assert deliveries.send_test(channel) == (False, detail)
            assert outer.hits == 1
        assert inner.hits == 0
    channel.refresh_from_db()
    assert channel.enabled  # a redirect fails this message without disabling the channel


# --- nothing the receiver says reaches the admin or the log --------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "detail"),
    [("webhook", 500, "receiver answered 500"), ("webhook", 422, "receiver answered 422"),
     ("slack", 500, "Slack answered 500"), ("slack", 400, "Slack answered 400"),
     ("slack", 404, "Slack answered 404")],
)  # fmt: skip
def test_send_test_never_shows_the_response_body(
    project: Project,
    admin: APIClient,
    api: APIClient,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    status: int,
    detail: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.ALERTS_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    marker = f"MARKER-{uuid.uuid4().hex}"
    with target("127.0.0.1", status=status, body=f"{marker} internal details") as local:
        channel = _channel(project, kind, local.url())
        assert deliveries.send_test(channel) == (False, detail)
        channel.refresh_from_db()
        assert marker not in channel.disabled_reason
        channel.enable()
        answer = admin.post(f"/v1/channels/{channel.pk}/test")
        shown = answer.content.decode()
        channel.enable()
        _fire(project, api, [channel])
        assert local.hits == 3
    assert answer.json()["detail"] == detail
    delivery = Delivery.objects.get()
    channel.refresh_from_db()
    for text in (shown, delivery.last_error, channel.disabled_reason, caplog.text):
        assert marker not in text


@pytest.mark.parametrize(
    ("kind", "detail"), [("webhook", "could not reach the receiver"), ("slack", "could not reach Slack")]
)
def test_every_network_failure_reads_the_same(project: Project, settings: Any, kind: str, detail: str) -> None:
    """Closed port, silent port, non-HTTP port, TLS to a plain port: one answer, so no port map."""
    settings.ALERTS_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    settings.ALERTS_HTTP_TIMEOUT_SECONDS = 1
    with target("127.0.0.1") as closed:
        closed_url = closed.url()
    with (
        target("127.0.0.1", mode="hang") as silent,
        target("127.0.0.1", mode="garbage") as garbage,
        target("127.0.0.1") as plain,
    ):
        urls = [closed_url, silent.url(), garbage.url(), plain.url(scheme="https")]
        results = [deliveries.send_test(_channel(project, kind, url, name=str(i))) for i, url in enumerate(urls)]
        assert (silent.hits, garbage.hits, plain.hits) == (1, 1, 1)
    assert results == [(False, detail)] * 4
