"""Processes for the benches: each started in its own session and stopped by its process group.

Everything here binds loopback only and every wait is bounded. ``Procs`` remembers what it started so
one ``stop_all()`` in a ``finally`` leaves nothing behind; a private PostgreSQL cluster (never the
machine's shared one), a private redis-server and a tmpfs mount are owned the same way.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PG_VERSION = "15"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001, S110 - a probe that fails is a probe that says "not yet"
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def http_ok(port: int, path: str = "/healthz", timeout: float = 2.0) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Proc:
    """A child in its own session: its pid is its process group id."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole group, as an OOM killer or a pulled plug would."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self, grace: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill9()
        except ProcessLookupError:
            pass
        try:  # a child that outlived its leader (same group) goes too
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Procs:
    """Everything one bench run started, stopped in reverse order by ``stop_all``."""

    log_dir: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, cmd: Sequence[str], env: dict[str, str]) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(cmd), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()


@dataclass
class PgCluster:
    """A private PostgreSQL cluster (``pg_createcluster``) on its own port and data directory."""

    name: str
    port: int
    base: Path
    created: bool = False

    def create(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chown(self.base, *_postgres_ids())
        subprocess.run(
            ["pg_createcluster", PG_VERSION, self.name, "-p", str(self.port), "-d", str(self.base / "data"),
             "-l", str(self.base / "postgresql.log"), "--start-conf=manual", "-q",
             "-o", "shared_buffers=64MB", "-o", "max_connections=200",
             "--", "--auth-local=trust", "--auth-host=trust"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.created = True

    def start(self) -> None:
        subprocess.run(["pg_ctlcluster", PG_VERSION, self.name, "start"], check=True, timeout=60)

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected, as when a database server goes away."""
        subprocess.run(["pg_ctlcluster", PG_VERSION, self.name, "stop", "-m", "fast"], check=True, timeout=60)

    def drop(self) -> None:
        if self.created:
            subprocess.run(["pg_dropcluster", PG_VERSION, self.name, "--stop"], check=False, timeout=60)
            self.created = False

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def chown_postgres(path: Path) -> None:
    os.chown(path, *_postgres_ids())


@dataclass
class RedisServer:
    """A private redis-server without persistence: stopping it loses what it held, as a crash would."""

    procs: Procs
    port: int
    workdir: Path
    proc: Proc | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = self.procs.start(
            f"redis-{self.port}",
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "yes"],
            dict(os.environ),
        )  # fmt: skip
        if not wait_for(self.ping, 15):
            raise RuntimeError(f"redis-server on {self.port} did not answer:\n{self.proc.tail()}")

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@dataclass
class Tmpfs:
    """A small tmpfs (needs root): a disk that can be filled on purpose."""

    path: Path
    size: str
    mounted: bool = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", str(self.path)],
                       check=True)  # fmt: skip
        self.mounted = True

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def umount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False
