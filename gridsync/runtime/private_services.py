"""Private, throw-away instances of the real servers (Mosquitto, NATS JetStream, PostgreSQL)
on free ports in a temp directory, for fault drills that kill and restart them without
touching the machine's shared services.

Each server has ``start()``, ``kill()`` (SIGKILL: a crash, nothing flushed on the way out),
``stop()`` (graceful) and ``restart(hard=...)``; ``close()`` ends it and removes its files.
:func:`missing_binaries` names what is not installed. PostgreSQL refuses to run as root, so
as root the cluster is created and run as the ``postgres`` user (via ``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else (shutil.which(name) or name)


def missing_binaries() -> list[str]:
    """Server binaries the drills need that are not installed."""
    need = [MOSQUITTO, NATS_SERVER, _pg_bin("initdb"), _pg_bin("pg_ctl")]
    return [b for b in need if not (os.path.isfile(b) and os.access(b, os.X_OK))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, up: bool = True, timeout_s: float = 20.0) -> float:
    """Wait until 127.0.0.1:port accepts (``up``) or refuses connections; returns seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return time.monotonic() - t0
        except OSError:
            if not up:
                return time.monotonic() - t0
        time.sleep(0.05)
    state = "accepting" if up else "closed"
    msg = f"port {port} not {state} after {timeout_s:g} s"
    raise TimeoutError(msg)


class _Server:
    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"gridsync-{self.name}-"))
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None
        wait_port(self.port, up=False)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None
        wait_port(self.port, up=False)

    def restart(self, hard: bool = True, down_s: float = 0.0) -> None:
        self.kill() if hard else self.stop()
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def close(self) -> None:
        try:
            if self.proc is not None:
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PrivateMosquitto(_Server):
    """Mosquitto with persistence in its temp dir and no per-client queue limit (the
    default of 1000 queued messages silently drops QoS 1 messages for a slow subscriber)."""

    name = "mosquitto"

    def __init__(self, auth: list[str] | None = None) -> None:
        """``auth``: configuration lines replacing ``allow_anonymous true`` (e.g. the
        password and ACL files of ``deploy/mosquitto/gridsync.conf``)."""
        super().__init__()
        conf = [
            f"listener {self.port} 127.0.0.1",
            *(auth if auth is not None else ["allow_anonymous true"]),
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            "autosave_on_changes true",
            "max_queued_messages 0",
            "max_inflight_messages 200",
        ]
        if os.geteuid() == 0:
            conf.append("user root")  # else it switches to 'mosquitto', who cannot write here
        (self.dir / "mosquitto.conf").write_text("\n".join(conf) + "\n")

    def _argv(self) -> list[str]:
        return [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")]


class PrivateNats(_Server):
    """nats-server with JetStream file storage in its temp dir."""

    name = "nats"

    def _argv(self) -> list[str]:
        return [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.dir)]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class PrivatePostgres(_Server):
    """A fresh cluster (trust auth, user ``postgres``) with fsync on, as in production."""

    name = "postgres"

    def __init__(self) -> None:
        super().__init__()
        self.data = self.dir / "data"
        self._as = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=120)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "start"
        )
        wait_port(self.port)

    def kill(self) -> None:
        """Crash: immediate shutdown (SIGQUIT; connections cut, no checkpoint, WAL crash
        recovery on the next start), as PostgreSQL's own recovery tests do. A SIGKILL of
        the postmaster would leave its backends orphaned."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        wait_port(self.port, up=False)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        wait_port(self.port, up=False)

    def close(self) -> None:
        try:
            self.stop()
        except (subprocess.SubprocessError, TimeoutError):
            self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
