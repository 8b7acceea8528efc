"""`manage.py serve` on a fresh directory serves its own static files (no collectstatic run before)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "METERLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "CLICKHOUSE_URL": f"chdb://{tmp_path}/clickhouse",
    }
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CACHE_URL", None)
    return env


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        if server.poll() is not None:
            raise AssertionError(server.stderr.read().decode() if server.stderr else "serve exited")
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError("serve did not answer in 90 s")
        time.sleep(0.2)


def test_serve_without_collectstatic_serves_css_js_plotly_and_swagger_ui(tmp_path: Path) -> None:
    port = _free_port()
    assert not (tmp_path / "static").exists()
    server = _start(_env(tmp_path), port)
    try:
        for path, kind in (
            ("/static/web/app.css", "text/css"),
            ("/static/web/app.js", "javascript"),
            ("/static/vendor/plotly.min.js", "javascript"),
        ):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                assert answer.status == 200
                assert kind in answer.headers["Content-Type"], (path, answer.headers["Content-Type"])
                assert len(answer.read()) > 100
        # /v1/docs/ (Swagger UI) works offline: every script, stylesheet and icon comes from this app.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/docs/", timeout=10) as answer:
            html = answer.read().decode()
        assert "cdn" not in html.lower(), html
        assert "unpkg" not in html.lower(), html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
        assert any(a.endswith(".css") for a in assets), assets
        for asset in assets:
            assert asset.startswith("/"), asset  # nothing from another host
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{asset}", timeout=10) as answer:
                assert answer.status == 200, asset
                assert len(answer.read()) > 100, asset
    finally:
        server.terminate()
        server.wait(30)


def test_sigterm_stops_serve_cleanly(tmp_path: Path) -> None:
    """``docker stop`` sends SIGTERM: the drain and schedule stop before the process ends."""
    server = _start(_env(tmp_path), _free_port())
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err.decode()[-2000:]
    assert b"Meterline stopped" in out
