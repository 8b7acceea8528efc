"""Slow clients against the shipped nginx config, in front of a real gunicorn.

Debian's nginx runs ``ops/nginx/nginx.conf.template`` rendered as the official image renders it
(envsubst of the variables compose sets); only the listen address, the upstream and the file
paths differ. Behind it, gunicorn serves ``config.wsgi`` with 2 sync workers on loopback, so two
slow clients are enough to starve it: the same attack sent to gunicorn directly is the reference
showing the attack works. Every process started here is stopped by its id, whatever happens.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.db import connection

from ingest.models import Batch
from tenancy.models import Project

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "ops" / "nginx" / "nginx.conf.template"
COMPOSE = ROOT / "docker-compose.yml"
NGINX = Path("/usr/sbin/nginx")
# The official image's paths in the template; the test moves them into its own directory.
IMAGE_PATHS = {"/run/nginx.pid": "nginx.pid", "/var/cache/nginx/": ""}
# What the gunicorn access log shows of each request: the headers the app receives.
ACCESS_FORMAT = "%(r)s %(s)s xff=%({x-forwarded-for}i)s proto=%({x-forwarded-proto}i)s host=%({host}i)s"
RECORD = {"provider": "openai", "model": "gpt-4o", "input_tokens": 100, "output_tokens": 20}


# --- the shipped config, rendered -----------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def compose_default(value: str) -> str:
    """What compose interpolates ``${VAR:-default}`` to when VAR is unset; other values as they are."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return match[1] if match else value


def render(template: str, values: Mapping[str, str], scratch: Path) -> str:
    """``template`` as the image's envsubst renders it (``$NAME`` and ``${NAME}`` of the given names
    only), with the image's file paths moved under ``scratch``."""
    text = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], m[0]), template)
    for path, replacement in IMAGE_PATHS.items():
        assert path in text, f"{path} is no longer in the template: update IMAGE_PATHS"
        text = text.replace(path, f"{scratch}/{replacement}")
    return text


def shipped_config(listen: str, upstream: str, scratch: Path) -> str:
    """The template with the values compose gives the nginx service, but this listen address and
    upstream."""
    environment = {k: compose_default(str(v)) for k, v in compose()["services"]["nginx"]["environment"].items()}
    environment.update(NGINX_LISTEN=listen, NGINX_UPSTREAM=upstream)
    return render(TEMPLATE.read_text(), environment, scratch)


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started here in its own session, with its children (gunicorn's workers)."""
    if proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def get(port: int, path: str, timeout: float, headers: Mapping[str, str] | None = None) -> int | None:
    """The status of ``GET path``, or None if there is no answer within ``timeout`` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        return conn.getresponse().status
    except OSError:  # timeouts included
        return None
    finally:
        conn.close()


@dataclass
class Server:
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_lines(self, marker: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if marker in line]

    def log_line(self, marker: str, seconds: float = 10) -> str:
        """The one line about ``marker``: gunicorn logs a request just after answering it."""
        deadline = time.monotonic() + seconds
        while not (lines := self.log_lines(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(lines) == 1, lines
        return lines[0]

    def never_logs(self, marker: str, seconds: float = 1) -> bool:
        """True if no line about ``marker`` appears within ``seconds`` (a late log line included)."""
        deadline = time.monotonic() + seconds
        while not self.log_lines(marker):
            if time.monotonic() > deadline:
                return True
            time.sleep(0.05)
        return False

    def wait_until_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if get(self.port, "/healthz", timeout=2) == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"/healthz did not answer within {seconds} s:\n{self.log_text()[-3000:]}")


def database_url() -> str:
    db = connection.settings_dict  # pytest-django has pointed it at the test database
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def gunicorn(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """gunicorn serving config.wsgi with 2 sync workers, on the test database. No broker and a chDB
    directory of its own that nothing opens: accepting a call only writes the outbox."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "INGEST_RATE_LIMIT")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url(),
        DB_CONN_MAX_AGE="0",  # no connection left open when the test database is dropped
        CLICKHOUSE_URL=f"chdb://{tmp / 'clickhouse'}",
        METERLINE_VAR_DIR=str(tmp / "var"),
        SECRET_KEY="test-only-secret-key",
        ALLOWED_HOSTS="meterline.test,127.0.0.1",
        METERLINE_TRUST_X_FORWARDED_PROTO="true",  # as compose sets it for web
        DEBUG="false",
        LOG_LEVEL="WARNING",
    )
    log = tmp / "access.log"
    cmd = [
        sys.executable, "-m", "gunicorn", "config.wsgi:application",
        "--chdir", str(ROOT),
        "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--threads", "1", "--worker-class", "sync",
        "--timeout", "60",
        "--worker-tmp-dir", str(tmp),
        "--access-logfile", str(log), "--access-logformat", ACCESS_FORMAT,
        "--error-logfile", str(tmp / "error.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        Server(port, tmp / "error.log", proc).wait_until_healthy(60)
        yield Server(port, log, proc)
    finally:
        stop(proc)


@contextmanager
def running_nginx(upstream_port: int) -> Iterator[Server]:
    """Debian's nginx with the shipped config, in front of ``127.0.0.1:upstream_port``."""
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is absent: `make test` installs Debian's nginx (apt-get install nginx)")
    # Not under pytest's private tmp: started as root, the workers run as nobody and spool here.
    scratch = Path(tempfile.mkdtemp(prefix="meterline-nginx-"))
    scratch.chmod(0o755)
    port = free_port()
    conf = scratch / "nginx.conf"
    conf.write_text(shipped_config(f"127.0.0.1:{port}", f"127.0.0.1:{upstream_port}", scratch))
    log = scratch / "nginx.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(NGINX), "-p", str(scratch), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "nginx does not listen"
            time.sleep(0.1)
        yield Server(port, log, proc)
    finally:
        stop(proc)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx(gunicorn: Server) -> Iterator[Server]:
    with running_nginx(gunicorn.port) as server:
        server.wait_until_healthy(20)
        yield server


# --- the attack ---------------------------------------------------------------------------------


class Slowloris:
    """Connections that send a request a byte every ``interval`` seconds: ``headers`` of them never
    finish their header, ``bodies`` send a whole header and then never finish their body.

    The slow bodies are sign-in forms with a CSRF cookie: Django reads such a body before it answers
    (an API call without a key would be refused with 401 before its body is read).
    """

    def __init__(self, port: int, *, headers: int, bodies: int, interval: float = 0.5, marker: str) -> None:
        self.port, self.interval = port, interval
        self.scripts: list[tuple[bytes, bytes]] = []  # (sent at once, then one byte at a time, repeated)
        head = f"POST /accounts/login/?{marker} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        self.scripts += [(b"", (head + "X-Slow: ").encode())] * headers
        form = (
            f"{head}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n"
            f"Cookie: csrftoken={'a' * 32}\r\n\r\n"
        )
        self.scripts += [(form.encode(), b"")] * bodies
        self.socks: list[socket.socket] = []
        self.sent = [0] * len(self.scripts)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)

    def __enter__(self) -> Slowloris:
        try:
            for at_once, _ in self.scripts:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                self.socks.append(sock)
                sock.sendall(at_once)
                sock.settimeout(None)  # blocking again, so MSG_DONTWAIT answers at once
        except BaseException:
            self.__exit__()
            raise
        self.thread.start()
        return self

    def _drip(self) -> None:
        while not self.done.wait(self.interval):
            for i, (sock, (_, slowly)) in enumerate(zip(self.socks, self.scripts, strict=True)):
                byte = slowly[self.sent[i] : self.sent[i] + 1] or b"a"  # then an endless header value or body
                with suppress(OSError):
                    sock.send(byte, socket.MSG_DONTWAIT)
                    self.sent[i] += 1

    def held(self) -> int:
        """How many connections the server still holds open without having answered."""
        count = 0
        for sock in self.socks:
            try:
                sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                count += 1
            except OSError:
                pass
        return count

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(5)
        for sock in self.socks:
            sock.close()


def timed_get(port: int, path: str, timeout: float) -> tuple[int | None, float]:
    started = time.monotonic()
    status = get(port, path, timeout)
    return status, time.monotonic() - started


def test_slow_clients_do_not_starve_healthz_behind_nginx(gunicorn: Server, nginx: Server) -> None:
    # given 50 slow clients on nginx, half stuck in their header and half in their body
    with Slowloris(nginx.port, headers=25, bodies=25, marker="slowloris") as attack:
        time.sleep(2)  # a few bytes each: bare gunicorn would be holding both workers by now
        # then /healthz through nginx answers at once, again and again
        for _ in range(3):
            status, seconds = timed_get(nginx.port, "/healthz", timeout=2)
            assert (status, seconds < 2) == (200, True), seconds
        # while nginx still holds every slow connection, none of which reached gunicorn
        assert attack.held() == 50
    assert gunicorn.never_logs("slowloris")


@pytest.mark.parametrize(("headers", "bodies"), [(25, 0), (0, 25)], ids=["slow-headers", "slow-bodies"])
def test_the_same_attack_starves_bare_gunicorn(gunicorn: Server, headers: int, bodies: int) -> None:
    """The reference: without nginx either half of the attack alone leaves /healthz unanswered."""
    try:
        with Slowloris(gunicorn.port, headers=headers, bodies=bodies, marker="bare") as attack:
            time.sleep(2)
            assert attack.held() == headers + bodies
            assert timed_get(gunicorn.port, "/healthz", timeout=2)[0] is None
    finally:  # healthy again once they are gone: the other tests use the same gunicorn
        gunicorn.wait_until_healthy(15)


# --- requests through the proxy -----------------------------------------------------------------


def post(port: int, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"{}")
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)  # gunicorn must see the project and key
def test_a_call_through_nginx_is_accepted_with_the_client_address_and_host(
    gunicorn: Server, nginx: Server, project: Project, ingest_key: str
) -> None:
    # when an SDK posts a call through nginx, pretending to come from elsewhere over https
    status, body = post(
        nginx.port,
        "/v1/calls?forwarded",
        json.dumps({"calls": [RECORD]}).encode(),
        {
            "Authorization": f"Bearer {ingest_key}",
            "Host": "meterline.test:8443",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
        },
    )
    # then it is accepted into the outbox
    assert (status, body["accepted"]) == (202, 1), body
    assert Batch.objects.filter(project=project).count() == 1
    # and the app saw the real client address, nginx's scheme and the client's Host (with its port)
    line = gunicorn.log_line("/v1/calls?forwarded")
    assert " 202 xff=127.0.0.1 proto=http host=meterline.test:8443" in line, line


@pytest.mark.django_db(transaction=True)
def test_the_body_limit_is_the_ingest_limit(gunicorn: Server, nginx: Server, project: Project, ingest_key: str) -> None:
    auth = {"Authorization": f"Bearer {ingest_key}"}
    # a body of exactly INGEST_MAX_BYTES passes nginx whole and is accepted
    envelope = json.dumps({"calls": [RECORD]}).encode()
    limit = settings.INGEST_MAX_BYTES
    at_limit = envelope[:-1] + b" " * (limit - len(envelope)) + b"}"
    assert len(at_limit) == limit == 5 * 1024 * 1024
    status, body = post(nginx.port, "/v1/calls?at-limit", at_limit, auth)
    assert (status, body["accepted"]) == (202, 1), body

    # one byte more is refused by nginx, in the API's words, and never reaches gunicorn
    status, body = post(nginx.port, "/v1/calls?over-limit", at_limit + b" ", auth)
    assert (status, body) == (413, {"detail": f"body is larger than {limit} bytes"})

    # a 6 MB body is refused as soon as its header is read: the answer comes before the body is sent
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/calls?six-mb HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ingest_key.encode() + b"\r\nContent-Length: 6000000\r\n\r\n"
        )
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        with suppress(OSError):  # nginx may close while the body is still on its way
            sock.sendall(b" " * 6_000_000)
    assert gunicorn.never_logs("over-limit")
    assert gunicorn.never_logs("six-mb")
    assert Batch.objects.filter(project=project).count() == 1


def test_connections_per_client_are_capped_but_healthz_is_not(gunicorn: Server, nginx: Server) -> None:
    # given 100 slow bodies in progress from one address (the limit), and 100 slow headers (which
    # the limit does not count: client_header_timeout bounds them)
    with Slowloris(nginx.port, headers=100, bodies=100, interval=1.0, marker="capped") as attack:
        time.sleep(1)
        assert attack.held() == 200
        # then the next request from that address is told to come back
        status, body = post(nginx.port, "/v1/calls?one-more", b"{}", {})
        assert (status, body["detail"]) == (429, "too many requests in progress from this address; retry")
        # while /healthz still answers
        assert timed_get(nginx.port, "/healthz", timeout=2)[0] == 200
    assert gunicorn.never_logs("one-more")


def test_gunicorn_down_is_a_503_with_retry_after() -> None:
    # given nginx in front of a port where nothing listens
    with running_nginx(free_port()) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/healthz")
        reply = conn.getresponse()
        # then clients are asked to retry, in the API's words, never shown a 502 page
        assert (reply.status, reply.getheader("Retry-After")) == (503, "5")
        assert json.loads(reply.read()) == {"detail": "Meterline is not answering right now; retry"}
        conn.close()


# --- the config as compose runs it ----------------------------------------------------------------


def test_compose_renders_the_template_with_the_ingest_limit_and_publishes_only_nginx() -> None:
    services = compose()["services"]
    proxy = services["nginx"]
    # the image renders the template into nginx.conf, from the repository's file, read-only
    assert proxy["environment"]["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    assert proxy["volumes"] == ["./ops/nginx/nginx.conf.template:/etc/nginx/templates/nginx.conf.template:ro"]
    # every variable of the template is one compose sets, and nginx's own variables are lower case
    # (the image's envsubst would replace an upper-case one that happens to be in its environment)
    template = TEMPLATE.read_text()
    names = {m[0] or m[1] for m in re.findall(r"\$\{(\w+)\}|\$(\w+)", template)}
    assert {n for n in names if not n.islower()} == set(proxy["environment"]) - {"NGINX_ENVSUBST_OUTPUT_DIR"}
    # the body cap is the app's INGEST_MAX_BYTES, one variable for both, defaulting to the app's default
    limit = services["web"]["environment"]["INGEST_MAX_BYTES"]
    assert proxy["environment"]["NGINX_MAX_BODY_SIZE"] == limit == "${INGEST_MAX_BYTES:-5242880}"
    assert int(compose_default(limit)) == 5 * 1024 * 1024 == settings.INGEST_MAX_BYTES
    # nginx listens where compose publishes; gunicorn is reachable only on the compose network
    assert proxy["ports"] == ["${METERLINE_HTTP_PORT:-8000}:" + proxy["environment"]["NGINX_LISTEN"]]
    assert proxy["environment"]["NGINX_UPSTREAM"] == "web:8000"
    assert "ports" not in services["web"]


def test_the_scheme_header_is_trusted_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file = str(ROOT / "config" / "settings.py")
    monkeypatch.delenv("METERLINE_TRUST_X_FORWARDED_PROTO", raising=False)
    assert "SECURE_PROXY_SSL_HEADER" not in runpy.run_path(settings_file)
    monkeypatch.setenv("METERLINE_TRUST_X_FORWARDED_PROTO", "true")
    assert runpy.run_path(settings_file)["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
