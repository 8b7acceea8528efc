"""Deliveries through real HTTP to a local receiver: retries, permanent failures, email, signatures."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from rest_framework.test import APIClient

from alerts import deliveries
from alerts.models import Budget, Channel, Delivery
from alerts.tests.helpers import budget, documented_verify, evaluate, receiver, spend
from alerts.transports.email import EmailTransport
from tenancy.models import Project

OCT = datetime(2026, 10, 20, 12, tzinfo=UTC)


def _fire(project: Project, api: APIClient, channel: Channel, usd: str = "85.00") -> Budget:
    b = budget(project, "100.00", rules=[("actual", [50, 80, 100], [channel])], scope={"feature": ["search"]})
    spend(api, usd, datetime(2026, 10, 3, tzinfo=UTC), feature="search", customer_id="acme")
    evaluate(project, OCT)
    return b


def test_slack_500_is_retried_after_backoff_and_delivered_once(
    project: Project, api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiver() as slack:
        slack.script = [(500, "internal_error")]
        url = f"{slack.url}/services/T000/B000/SECRETPART"
        channel = Channel.objects.create(project=project, kind="slack", name="ops", config={"webhook_url": url})
        _fire(project, api, channel)  # the first attempt happens right after the alert is recorded
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.attempts) == ("sending", 1)
        assert "500" in delivery.last_error
        assert delivery.next_attempt_at is not None
        # not due yet: nothing is sent
        assert deliveries.send_due(now=delivery.next_attempt_at - timedelta(seconds=1)) == {}
        # due: sent, once
        assert deliveries.send_due(now=delivery.next_attempt_at) == {"sent": 1}
        assert deliveries.send_due(now=delivery.next_attempt_at + timedelta(hours=2)) == {}
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, "")
        assert len(slack.requests) == 2
        message = slack.requests[-1].json()
        assert message["text"] == "monthly has reached 80 % of its month budget"
        text = str(message["blocks"])
        for expected in ("feature = search", "$85.00 of $100.00", "85.0 %", "acme", "gpt-4o", "/budgets/"):
            assert expected in text
    assert "SECRETPART" not in caplog.text


def test_slack_404_disables_the_channel_and_stops_attempts(project: Project, api: APIClient) -> None:
    with receiver() as slack:
        slack.script = [(404, "no_service")]
        channel = Channel.objects.create(
            project=project, kind="slack", name="ops", config={"webhook_url": f"{slack.url}/hook"}
        )
        _fire(project, api, channel)
        delivery = Delivery.objects.get()
        channel.refresh_from_db()
        assert delivery.status == "failed"
        assert not channel.enabled
        assert channel.disabled_reason == "Slack answered 404 no_service"
        assert deliveries.send_due(now=OCT + timedelta(days=30)) == {}
        # a later alert for the same channel is recorded as failed without any request
        spend(api, "20.00", datetime(2026, 10, 4, tzinfo=UTC), feature="search")
        evaluate(project, OCT)
        assert list(Delivery.objects.order_by("pk").values_list("status", flat=True)) == ["failed", "failed"]
        assert len(slack.requests) == 1


def test_slack_invalid_token_is_permanent(project: Project, api: APIClient) -> None:
    with receiver() as slack:
        slack.script = [(403, "invalid_token")]
        channel = Channel.objects.create(project=project, kind="slack", name="ops", config={"webhook_url": slack.url})
        _fire(project, api, channel)
        channel.refresh_from_db()
        assert "invalid_token" in channel.disabled_reason


def test_webhook_is_signed_and_the_receiver_can_verify_it(project: Project, api: APIClient) -> None:
    secret = "whsec-0123456789abcdef"
    with receiver() as hook:
        channel = Channel.objects.create(
            project=project, kind="webhook", name="hook", config={"url": hook.url, "secret": secret}
        )
        b = _fire(project, api, channel)
        assert hook.wait_for(1, timeout=10)
        request = hook.requests[0]
        verify = documented_verify()  # the receiver's side, literally as docs/alerts.md gives it
        assert verify(secret, request.headers, request.body)
        assert not verify(secret, request.headers, request.body.replace(b"85.", b"15."))  # tampered
        assert not verify("another-secret-0123", request.headers, request.body)
        named = {k.lower(): v for k, v in request.headers.items()}
        without = {k: v for k, v in named.items() if k != "meterline-timestamp"}
        assert not verify(secret, without, request.body)  # missing timestamp: False, not an exception
        assert not verify(secret, {**without, "meterline-timestamp": "soon"}, request.body)
        assert not verify(secret, {**without, "meterline-timestamp": "١٢٣"}, request.body)
        assert not verify(secret, {k: v for k, v in named.items() if k != "meterline-signature"}, request.body)
        stale = str(int(named["meterline-timestamp"]) - 301)
        resigned = "v1=" + hmac.new(secret.encode(), stale.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        assert not verify(secret, {"meterline-timestamp": stale, "meterline-signature": resigned}, request.body)
        body = request.json()
        assert body["type"] == "alert.fired"
        assert body["budget"] == {
            "id": b.pk, "name": "monthly", "amount_usd": "100.00", "period": "month", "timezone": "UTC",
            "scope": {"feature": ["search"]},
        }  # fmt: skip
        assert (body["rule"], body["spend_usd"], body["percent"]) == (
            {"kind": "actual", "threshold": "80", "signal": "spend"}, "85.000000000000", "85.0"
        )  # fmt: skip
        assert body["delivery_id"] == int(request.headers["Meterline-Delivery"]) == Delivery.objects.get().pk
        assert secret not in request.body.decode()


def test_webhook_410_disables_and_other_4xx_fail_without_retry(project: Project, api: APIClient) -> None:
    with receiver() as hook:
        hook.script = [(422, "nope"), (410, "gone")]
        first = Channel.objects.create(
            project=project, kind="webhook", name="a", config={"url": hook.url, "secret": "s" * 16}
        )
        second = Channel.objects.create(
            project=project, kind="webhook", name="b", config={"url": hook.url, "secret": "s" * 16}
        )
        b = budget(project, "100.00", rules=[("actual", [50], [first, second])])
        spend(api, "60.00", datetime(2026, 10, 3, tzinfo=UTC))
        evaluate(project, OCT)
        rows = {d.channel.name: (d.status, d.last_error) for d in Delivery.objects.filter(alert__budget=b)}
        assert rows == {"a": ("failed", "receiver answered 422"), "b": ("failed", "receiver answered 410 Gone")}
        first.refresh_from_db()
        second.refresh_from_db()
        assert (first.enabled, second.enabled) == (True, False)


def test_unreachable_receiver_is_transient_and_gives_up_after_max_attempts(
    project: Project, api: APIClient, settings: object
) -> None:
    setattr(settings, "ALERTS_MAX_ATTEMPTS", 2)  # noqa: B010 - pytest-django's settings fixture
    with receiver() as hook:
        dead_url = hook.url
    config = {"url": dead_url, "secret": "s" * 16}
    channel = Channel.objects.create(project=project, kind="webhook", name="x", config=config)
    _fire(project, api, channel)
    delivery = Delivery.objects.get()
    assert delivery.status == "sending"
    assert delivery.last_error == "could not reach the receiver"  # no cause: the same for every port
    assert delivery.next_attempt_at is not None
    assert deliveries.send_due(now=delivery.next_attempt_at) == {"failed": 1}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    channel.refresh_from_db()
    assert channel.enabled  # a network failure says nothing about the channel


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(project: Project, api: APIClient) -> None:
    channel = Channel.objects.create(project=project, kind="email", name="mail", config={"to": ["cfo@example.com"]})
    _fire(project, api, channel)
    delivery = Delivery.objects.get()
    assert delivery.status == "sent"  # email via locmem
    # a fresh sending row: exactly one of two claims at the same instant wins
    Delivery.objects.filter(pk=delivery.pk).update(status="sending", next_attempt_at=OCT)
    assert [deliveries.claim(delivery.pk, OCT), deliveries.claim(delivery.pk, OCT)] == [True, False]
    assert deliveries.claim(delivery.pk, OCT + deliveries.LEASE) is True


def test_email_has_text_and_html_parts(project: Project, api: APIClient) -> None:
    channel = Channel.objects.create(
        project=project, kind="email", name="finance", config={"to": ["cfo@example.com", "ops@example.com"]}
    )
    _fire(project, api, channel, usd="105.00")
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.subject == "[Meterline] monthly has reached 100 % of its month budget"
    assert sorted(email.to) == ["cfo@example.com", "ops@example.com"]
    assert "Spend:    $105.00 of $100.00 (105.0 %)" in email.body
    assert "Top feature: search ($105.00)" in email.body
    html, mime = email.alternatives[0]  # type: ignore[attr-defined]
    assert mime == "text/html"
    assert "<td>feature = search</td>" in html
    assert "/budgets/" in html
    assert Delivery.objects.get().status == "sent"


def test_send_test_reaches_every_kind_and_disables_on_permanent_failure(project: Project) -> None:
    with receiver() as hook:
        hook.script = [(200, "ok"), (200, "ok"), (404, "no_service")]
        webhook = Channel.objects.create(
            project=project, kind="webhook", name="w", config={"url": hook.url, "secret": "s" * 16}
        )
        slack = Channel.objects.create(project=project, kind="slack", name="s", config={"webhook_url": hook.url})
        email = Channel.objects.create(project=project, kind="email", name="e", config={"to": ["a@example.com"]})
        assert deliveries.send_test(webhook) == (True, "sent")
        assert deliveries.send_test(slack) == (True, "sent")
        assert deliveries.send_test(email) == (True, "sent")
        assert hook.requests[0].json()["type"] == "alert.test"
        assert mail.outbox[0].subject.startswith("[Meterline] Test alert")
        assert deliveries.send_test(slack) == (False, "Slack answered 404 no_service")
        slack.refresh_from_db()
        assert not slack.enabled


@contextmanager
def garbage_server() -> Iterator[str]:
    """A TCP server that answers every request with a line that is not HTTP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(b"garbage\r\n\r\n")
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_malformed_http_answer_is_a_transient_failure(project: Project, api: APIClient) -> None:
    with garbage_server() as url:
        channel = Channel.objects.create(
            project=project, kind="webhook", name="x", config={"url": url, "secret": "s" * 16}
        )
        _fire(project, api, channel)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sending", 1)
    assert delivery.last_error == "could not reach the receiver"
    assert delivery.next_attempt_at is not None


def test_an_unexpected_error_is_retried_under_the_cap_and_recorded_without_urls(
    project: Project, api: APIClient, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    setattr(settings, "ALERTS_MAX_ATTEMPTS", 2)  # noqa: B010 - pytest-django's settings fixture

    def broken(self: object, message: object, delivery_id: int | None = None) -> None:
        raise RuntimeError("boom while posting to https://hooks.example.com/SECRET-PATH")

    monkeypatch.setattr(EmailTransport, "send", broken)
    channel = Channel.objects.create(project=project, kind="email", name="mail", config={"to": ["a@example.com"]})
    _fire(project, api, channel)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sending", 1)
    assert delivery.last_error == "RuntimeError: boom while posting to <url>"
    assert delivery.next_attempt_at is not None
    assert deliveries.send_due(now=delivery.next_attempt_at) == {"failed": 1}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("failed", "gave up: RuntimeError: boom while posting to <url>")


def test_a_budget_name_with_a_newline_still_mails_on_one_subject_line(project: Project, api: APIClient) -> None:
    channel = Channel.objects.create(project=project, kind="email", name="mail", config={"to": ["a@example.com"]})
    b = budget(project, "100.00", name="evil\nBcc: x@example.com", rules=[("actual", [50], [channel])])
    spend(api, "60.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate(project, OCT)
    assert Delivery.objects.get(alert__budget=b).status == "sent"
    assert mail.outbox[0].subject == "[Meterline] evil Bcc: x@example.com has reached 50 % of its month budget"


def _due_again(project: Project, api: APIClient, channels: int) -> list[Delivery]:
    """Deliveries (email, sent once) made due again at OCT, as if their nudges were lost."""
    made = [
        Channel.objects.create(project=project, kind="email", name=f"m{i}", config={"to": ["a@example.com"]})
        for i in range(channels)
    ]
    b = budget(project, "100.00", rules=[("actual", [50], made)])
    spend(api, "60.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate(project, OCT)
    Delivery.objects.filter(alert__budget=b).update(status="sending", next_attempt_at=OCT, attempts=0)
    return list(Delivery.objects.filter(alert__budget=b).order_by("pk"))


def test_the_sweep_claims_each_delivery_at_its_own_time_so_a_hang_cannot_expose_the_next(
    project: Project, api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _due_again(project, api, 2)
    clock = [OCT]
    visible: dict[int, bool] = {}

    class Hanging:
        def send(self, message: object, delivery_id: int | None = None) -> None:
            # what another worker's sweep sees while this delivery is being sent
            visible[delivery_id or 0] = delivery_id in deliveries.due(now=clock[0])
            clock[0] += timedelta(seconds=200)  # the receiver hangs longer than a lease

    monkeypatch.setattr(deliveries, "transport_for", lambda channel: Hanging())
    assert deliveries.send_due(now=OCT, clock=lambda: clock[0]) == {"sent": 2}
    assert visible == {first.pk: False, second.pk: False}


def test_a_worker_whose_lease_ran_out_does_not_overwrite_the_outcome(
    project: Project, api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    (delivery,) = _due_again(project, api, 1)

    class Overtaken:
        def send(self, message: object, delivery_id: int | None = None) -> None:
            # the lease ends while this send hangs; a second worker claims the delivery
            assert deliveries.claim(delivery.pk, OCT + deliveries.LEASE)

    monkeypatch.setattr(deliveries, "transport_for", lambda channel: Overtaken())
    assert deliveries.attempt(delivery.pk, OCT) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sending", 2)
    assert delivery.next_attempt_at == OCT + 2 * deliveries.LEASE  # still the second worker's lease


def test_retry_after_is_a_floor_for_the_next_attempt(project: Project, api: APIClient, settings: object) -> None:
    setattr(settings, "ALERTS_RETRY_BASE_SECONDS", 30)  # noqa: B010 - pytest-django's settings fixture
    with receiver() as hook:
        channel = Channel.objects.create(
            project=project, kind="webhook", name="w", config={"url": hook.url, "secret": "s" * 16}
        )
        _fire(project, api, channel)  # answered 200
        delivery = Delivery.objects.get()
        Delivery.objects.filter(pk=delivery.pk).update(status="sending", next_attempt_at=OCT, attempts=0)
        hook.script = [(429, "slow down", {"Retry-After": "90"})]
        assert deliveries.attempt(delivery.pk, now=OCT) == "retry"
    delivery.refresh_from_db()
    assert delivery.last_error == "receiver answered 429"
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at >= OCT + timedelta(seconds=90)  # not the 30 s backoff
    assert deliveries.send_due(now=OCT + timedelta(seconds=89)) == {}
