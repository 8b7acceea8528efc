"""`make run HOST=… PORT=…`: the server, the printed address and the links in alerts agree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _commands(*args: str, **env: str) -> list[str]:
    """The commands `make run` would run (make -n prints them without running any)."""
    if shutil.which("make") is None:
        pytest.fail("make is missing (the project's commands are make targets)")
    clean = {k: v for k, v in os.environ.items() if k != "METERLINE_BASE_URL"}
    done = subprocess.run(
        ["make", "-n", "run", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def _line(lines: list[str], needle: str) -> str:
    return next(line for line in lines if needle in line)


def test_base_url_follows_host_and_port() -> None:
    lines = _commands("HOST=127.0.0.2", "PORT=9123")
    serve = _line(lines, "manage.py serve")
    assert serve.startswith("METERLINE_BASE_URL=http://127.0.0.2:9123 "), serve
    assert "--host 127.0.0.2 --port 9123" in serve
    assert "--url http://127.0.0.2:9123/" in _line(lines, "seed_demo")


def test_defaults_and_an_explicit_base_url() -> None:
    assert _line(_commands(), "manage.py serve").startswith("METERLINE_BASE_URL=http://127.0.0.1:8000 ")
    lines = _commands("PORT=9123", METERLINE_BASE_URL="https://meterline.example.com")
    serve = _line(lines, "manage.py serve")
    assert serve.startswith("METERLINE_BASE_URL=https://meterline.example.com "), serve
    assert "--port 9123" in serve
    assert "--url https://meterline.example.com/" in _line(lines, "seed_demo")
