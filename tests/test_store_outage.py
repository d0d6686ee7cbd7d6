"""Skip, never double, when the store is down: two schedulers (and two services) on one
database, the database stopped while firings are due and started again.

PostgreSQL: a server of the test's own (initdb into a temporary directory, pg_ctl on a
free port, its socket in that directory), stopped and started by the test; the shared
server is never touched. SQLite: the database's directory becomes read-only (a read-only
bind mount over it) and is made writable again in a `finally`.

Time is the injected clock (`run_due(now)` is one whole firing step); the database, its
outage and its recovery are real."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from reconciler.core.crontab import parse_crontab
from reconciler.core.settings import DatabaseSettings, Settings
from reconciler.cron.scheduler import Scheduler
from reconciler.runtime.memory import MemoryRuntime
from reconciler.storage.store import Store

from .scheduler_helpers import Clock, Runner, make, target
from .webhook_helpers import LiveService, free_port

ENV = "main-shop"
CRONTAB = "* * * * * echo tick\n"
AS_POSTGRES = ("runuser", "-u", "postgres", "--")


@dataclass
class OwnPostgres:
    base: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/postgres?host={self.base / 'sock'}&port={self.port}"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(self.base / "data"), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base / 'sock'} -c listen_addresses=''"
        self._pg_ctl("-o", options, "-l", str(self.base / "log"), "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "-t", "30", "stop")


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if os.geteuid() != 0 or shutil.which("runuser") is None or shutil.which("initdb") is None:
        pytest.skip("needs root, runuser and initdb to start a PostgreSQL server of its own")
    base = Path(tempfile.mkdtemp(prefix="hoody-outage-pg-"))
    (base / "sock").mkdir()
    shutil.chown(base, "postgres", "postgres")
    shutil.chown(base / "sock", "postgres", "postgres")
    subprocess.run(
        [*AS_POSTGRES, "initdb", "-D", str(base / "data"), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = OwnPostgres(base, free_port())
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            [*AS_POSTGRES, "pg_ctl", "-D", str(base / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def rows(store: Store) -> dict[float, list[tuple[str, str | None]]]:
    out: dict[float, list[tuple[str, str | None]]] = {}
    for r in store.runs.list(env=ENV, limit=100):
        out.setdefault(r.scheduled_for, []).append((r.status, r.reason))
    return out


def two_schedulers(
    url: str, clock: Clock, engines: list[sa.Engine]
) -> tuple[list[Store], list[Scheduler], list[Runner]]:
    stores = [Store(url), Store(url)]
    engines.extend(store.engine for store in stores)
    pairs = [make(store, clock, owner=owner) for store, owner in zip(stores, "ab", strict=True)]
    for sched, _ in pairs:
        sched.replace(ENV, target(), parse_crontab(CRONTAB))
    return stores, [p[0] for p in pairs], [p[1] for p in pairs]


def outage_round(
    url: str,
    clock: Clock,
    down: Callable[[], None],
    up: Callable[[], None],
    engines: list[sa.Engine] | None = None,
) -> None:
    stores, scheds, runners = two_schedulers(url, clock, [] if engines is None else engines)
    try:
        for s in scheds:
            s.run_due(clock.set("2026-01-01T00:01:00"))
            s.wait_idle(10)
        down()
        try:
            for at in ("2026-01-01T00:02:00", "2026-01-01T00:03:00"):
                for s in scheds:
                    s.run_due(clock.set(at))
            assert all(s.store_error and "could not claim" in s.store_error for s in scheds)
        finally:
            up()
        for s in scheds:
            s.run_due(clock.set("2026-01-01T00:04:00"))
            s.wait_idle(10)
        assert all(s.store_error is None for s in scheds)
        # every firing once: run (00:01, 00:04) or missed with the reason (00:02, 00:03)
        got = rows(stores[0])
        minute = 1767225600.0  # 2026-01-01T00:00:00Z
        assert sorted(got) == [minute + 60 * k for k in (1, 2, 3, 4)]
        assert all(len(v) == 1 for v in got.values()), got
        assert got[minute + 60][0][0] == got[minute + 240][0][0] == "succeeded"
        for k in (2, 3):
            status, reason = got[minute + 60 * k][0]
            assert status == "missed" and reason and reason.startswith("not claimed:")
        assert sum(len(r.jobs) for r in runners) == 2  # nothing ran twice, nothing unclaimed
    finally:
        for s in scheds:
            s.stop()
        for store in stores:
            store.engine.dispose()


def test_postgres_down_skips_never_doubles_and_records_missed(own_postgres: OwnPostgres) -> None:
    outage_round(
        own_postgres.url, Clock("2026-01-01T00:00:00"), own_postgres.stop, own_postgres.start
    )


def test_readyz_is_503_while_postgres_is_down(tmp_path: Path, own_postgres: OwnPostgres) -> None:
    settings = Settings(
        state_dir=tmp_path / "state", database=DatabaseSettings(url=own_postgres.url)
    )
    with LiveService(settings, MemoryRuntime()) as live:
        assert requests.get(f"{live.url}/readyz", timeout=10).status_code == 200
        own_postgres.stop()
        try:
            r = requests.get(f"{live.url}/readyz", timeout=30)
            assert r.status_code == 503
            assert r.json()["checks"]["store"].startswith("failed")
        finally:
            own_postgres.start()
        # recovers without a restart
        ok = None
        for _ in range(50):
            ok = requests.get(f"{live.url}/readyz", timeout=30)
            if ok.status_code == 200:
                break
        assert ok is not None and ok.status_code == 200, ok.text if ok else None


@pytest.fixture
def read_only_dir(
    tmp_path: Path,
) -> Iterator[tuple[Path, Callable[[], None], Callable[[], None]]]:
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    folder = tmp_path / "db"
    folder.mkdir()
    mounted: list[bool] = []

    def down() -> None:
        subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], check=True)
        mounted.append(True)

    def up() -> None:
        # unmount until the folder is no mount point (a shared mount may be stacked twice)
        for _ in range(8):
            if not mounted or subprocess.run(["mountpoint", "-q", str(folder)]).returncode:
                break
            subprocess.run(["umount", str(folder)], check=True)
        mounted.clear()

    try:
        yield folder, down, up
    finally:
        up()


def test_sqlite_unwritable_skips_never_doubles_and_records_missed(
    read_only_dir: tuple[Path, Callable[[], None], Callable[[], None]],
) -> None:
    folder, down, up = read_only_dir
    url = f"sqlite:///{folder / 'hoody.db'}"
    engines: list[sa.Engine] = []

    def unwritable() -> None:
        down()
        # A read-only mount applies to files opened after it: the pools' connections
        # open again (what a process restarted on a read-only disk would see).
        for e in engines:
            e.dispose()

    def writable() -> None:
        for e in engines:  # files opened through the read-only mount close first
            e.dispose()
        up()

    outage_round(url, Clock("2026-01-01T00:00:00"), unwritable, writable, engines)


def test_readyz_is_503_while_sqlite_is_unwritable(
    tmp_path: Path, read_only_dir: tuple[Path, Callable[[], None], Callable[[], None]]
) -> None:
    folder, down, up = read_only_dir
    url = f"sqlite:///{folder / 'hoody.db'}"
    settings = Settings(state_dir=tmp_path / "state", database=DatabaseSettings(url=url))
    with LiveService(settings, MemoryRuntime()) as live:
        assert requests.get(f"{live.url}/readyz", timeout=10).status_code == 200
        down()
        live.store.engine.dispose()  # files opened after the read-only mount
        try:
            r = requests.get(f"{live.url}/readyz", timeout=30)
            assert r.status_code == 503, r.text
            assert "readonly" in r.json()["checks"]["scheduler"]
        finally:
            live.store.engine.dispose()
            up()
        assert requests.get(f"{live.url}/readyz", timeout=30).status_code == 200


def test_two_services_on_postgres_skip_never_double_and_recover(
    tmp_path: Path, own_postgres: OwnPostgres
) -> None:
    """Two services (`hoody serve` minus the process) on one PostgreSQL database and one
    repo: the database stops while `@every 1s` firings are due, then starts again."""
    from reconciler.core.settings import LimitsSettings, ReplicaSettings, RepoSettings

    from .conftest import GitRemote

    remote = GitRemote(tmp_path / "git")
    remote.commit(
        "main",
        {".hoody/app.yaml": "name: shop\nimage: busybox:1.36\n", ".hoody/crontab": "@every 1s x\n"},
    )

    def settings(who: str) -> Settings:
        return Settings(
            state_dir=tmp_path / f"state-{who}",
            database=DatabaseSettings(url=own_postgres.url),
            repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
            limits=LimitsSettings(min_every=1.0),
            replicas=ReplicaSettings(lease_ttl=30.0, renew_every=1.0, wake_poll=0.2),
        )

    runtimes = [MemoryRuntime(), MemoryRuntime()]
    executed: list[str] = []  # the HOODY_RUN_ID of every job either service ran
    for rt in runtimes:
        rt.images.add("busybox:1.36")
        rt.job_handler = lambda _cmd, env: (executed.append(env["HOODY_RUN_ID"]), (0, b"", b""))[1]
    with LiveService(settings("a"), runtimes[0]) as a, LiveService(settings("b"), runtimes[1]):
        store = a.store

        def done(status: str) -> list:
            return store.runs.list(env=ENV, status=status, limit=1000)

        deadline = time.monotonic() + 60
        while len(done("succeeded")) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(done("succeeded")) >= 3
        own_postgres.stop()
        try:
            time.sleep(4)  # firings due every second meanwhile
            r = requests.get(f"{a.url}/readyz", timeout=30)
            assert r.status_code == 503 and r.json()["checks"]["store"].startswith("failed")
        finally:
            own_postgres.start()
        before = len(done("succeeded"))
        deadline = time.monotonic() + 60
        while not (done("missed") and len(done("succeeded")) >= before + 3):
            assert time.monotonic() < deadline, "no recovery"
            time.sleep(0.2)
        missed = done("missed")
        assert all((m.reason or "").startswith("not claimed:") for m in missed)
        every = store.runs.list(env=ENV, limit=1000)
        slots = Counter(r.scheduled_for for r in every)
        assert max(slots.values()) == 1, slots  # no firing twice, on either service
        assert len(executed) == len(set(executed))  # no run executed twice
