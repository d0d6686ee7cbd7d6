"""hoody's own Caddy: one process per state_dir, started, watched and stopped by hoody.

Everything of it lives in `state_dir/caddy/`: the admin API on a unix socket (mode 0700
directory: only this user can reconfigure it), its storage (the local CA, certificates),
the config it starts with, its pid file and its log. A Caddy left running by a hoody
that was killed is adopted by the next start (no gap in serving) rather than fought over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from reconciler.core.errors import ProxyUnavailable
from reconciler.proxy.admin import CaddyAdmin

log = logging.getLogger(__name__)
_SOCKET_MAX = 100  # sun_path holds 108 bytes


class CaddyProcess:
    def __init__(self, binary: str, state_dir: Path) -> None:
        self.binary = binary
        self.dir = state_dir / "caddy"
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "caddy.json"
        self.pidfile = self.dir / "caddy.pid"
        self.logfile = self.dir / "caddy.log"
        # tls: internal — the root certificate to trust (browsers, curl --cacert)
        self.root_ca = self.data_dir / "pki" / "authorities" / "local" / "root.crt"
        sock = self.dir / "admin.sock"
        if len(str(sock)) > _SOCKET_MAX:  # a deep state_dir: a short private directory
            digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
            sock = Path(tempfile.gettempdir()) / f"hoody-caddy-{digest}" / "admin.sock"
        self.socket = sock
        self.admin_listen = f"unix/{sock}"
        self.admin = CaddyAdmin(self.admin_listen)
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted: int | None = None
        self._log: IO[bytes] | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else self._adopted

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._adopted is not None and _running(self._adopted)

    def start(self, config: dict[str, Any], timeout: float = 15.0) -> None:
        """Start Caddy with `config` (or adopt the one left running here, loading
        `config` into it); returns once its admin API answers."""
        for d in (self.dir, self.data_dir, self.socket.parent):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
        self._write_config(config)
        orphan = self._orphan()
        if orphan is not None:
            try:
                self.admin.request("POST", "/load", config)
                self._adopted = orphan
                log.info("adopted the caddy already running here (pid %d)", orphan)
                return
            except ProxyUnavailable:
                _terminate(orphan, 5.0)
        path = shutil.which(self.binary)
        if path is None:
            raise ProxyUnavailable(
                f"proxy: caddy binary {self.binary!r} not found (apt-get install caddy)"
            )
        self.socket.unlink(missing_ok=True)
        if self._log is None:
            self._log = self.logfile.open("ab")
        home = str(self.dir)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "XDG_DATA_HOME": str(self.data_dir),
            "XDG_CONFIG_HOME": home,
        }
        self._proc = subprocess.Popen(
            [path, "run", "--config", str(self.config_path), "--pidfile", str(self.pidfile)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
            cwd=home,
            start_new_session=True,  # a Ctrl-C meant for hoody reaches Caddy via stop()
        )
        self._adopted = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin.ping()
                return
            except ProxyUnavailable:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    tail = self._tail()
                    self.stop()
                    raise ProxyUnavailable(
                        "proxy: caddy did not start"
                        + (f"; its last output:\n{tail}" if tail else "")
                    ) from None
                time.sleep(0.05)

    def restart(self, config: dict[str, Any]) -> None:
        self.restarts += 1
        self.stop()
        self.start(config)

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout)
            self._proc = None
        elif self._adopted is not None:
            _terminate(self._adopted, timeout)
            self._adopted = None

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _write_config(self, config: dict[str, Any]) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        tmp.replace(self.config_path)

    def _orphan(self) -> int | None:
        """The pid of a Caddy started on this state_dir by an earlier hoody, if alive."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if self._proc is not None and pid == self._proc.pid:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if str(self.config_path).encode() in cmdline and _running(pid):
            return pid
        return None

    def _tail(self, lines: int = 5) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def reload_resets_connections() -> str | None:
    """Caddy opens a new SO_REUSEPORT listener per config change and closes the old one;
    Linux resets the connections still queued on the closed one unless
    net.ipv4.tcp_migrate_req is 1 (Linux >= 5.14), which moves them to the new listener.
    A warning when that is off, None when it is on (or not Linux)."""
    try:
        value = MIGRATE_REQ.read_text().strip()
    except OSError:
        return (
            None
            if not Path("/proc/sys/net/ipv4").is_dir()
            else (
                "this kernel has no net.ipv4.tcp_migrate_req (Linux < 5.14): a route change can "
                "reset a connection being accepted at that instant"
            )
        )
    if value == "1":
        return None
    return (
        "net.ipv4.tcp_migrate_req is 0: a route change can reset a connection being accepted "
        "at that instant; `sysctl -w net.ipv4.tcp_migrate_req=1` makes updates drop nothing"
    )


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
