"""A crontab flood on the real engine and the real scheduler: rejected as a whole with
the line named, the branch's previous schedule keeps running, and a neighbour's
schedule keeps its time. Outcomes are waited for; no duration is asserted."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from reconciler.core.errors import SpecError
from reconciler.core.settings import LimitsSettings, RepoSettings, SchedulerSettings, Settings
from reconciler.cron.sync import ScheduleSync
from reconciler.runtime.docker import DockerRuntime

from .conftest import GitRemote, unique
from .test_scheduler_docker import runs, spec
from .webhook_helpers import LiveService, wait_for

pytestmark = pytest.mark.docker


def test_a_crontab_flood_is_refused_while_the_neighbours_schedule_keeps_time(
    tmp_path: Path, remote: GitRemote, docker_repo: str
) -> None:
    app = unique("a")
    neighbour, flooder = f"main-{app}", f"feature-flood-{app}"
    remote.commit("main", {".hoody/app.yaml": spec(app), ".hoody/crontab": "@every 2s echo n\n"})
    remote.commit("feature/flood", {".hoody/crontab": "@every 2s echo mine\n"}, base="main")
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name=docker_repo, url=str(remote.bare), poll_interval=0),),
        scheduler=SchedulerSettings(shutdown_grace=0.5, kill_grace=1.0),
        limits=LimitsSettings(max_cron_entries=50, min_every=1.0),
    )
    with LiveService(settings, DockerRuntime()) as live:
        wait_for(lambda: len(runs(live, flooder, "succeeded")) >= 1, 60, "the flooder's runs")
        wait_for(lambda: len(runs(live, neighbour, "succeeded")) >= 2, 60, "the neighbour")

        flood = "".join(f"@every 1s echo {i}\n" for i in range(10_000))
        remote.commit("feature/flood", {".hoody/crontab": flood})
        live.service.trigger(docker_repo)
        live.settle()
        rejected = wait_for(
            lambda: live.store.events(env=flooder, kind="schedule_rejected"), 30, "the rejection"
        )
        message = rejected[0].message
        assert message.startswith(
            "schedule rejected: .hoody/crontab:51: more than 50 entries (10000)"
        ), message
        assert "the previous schedule keeps running" in message
        # Its previous schedule goes on, and so does the neighbour's.
        mine = len(runs(live, flooder, "succeeded"))
        ours = len(runs(live, neighbour, "succeeded"))
        wait_for(lambda: len(runs(live, flooder, "succeeded")) >= mine + 2, 60, "still mine")
        wait_for(lambda: len(runs(live, neighbour, "succeeded")) >= ours + 2, 60, "still n")

    assert {r.stdout.strip() for r in runs(live, flooder)} == {"mine"}
    slots = [r.scheduled_for for r in runs(live, neighbour) if r.trigger == "schedule"]
    assert {round(b - a, 3) for a, b in itertools.pairwise(slots)} == {2.0}
    assert {r.status for r in runs(live, neighbour)} == {"succeeded"}


class _NoScheduler:
    on_entry_gone: list[object] = []


def test_crontab_limits_reject_the_whole_file_naming_the_line() -> None:
    sync = ScheduleSync(_NoScheduler(), lambda *a: None, limits=LimitsSettings())  # type: ignore[arg-type]
    with pytest.raises(SpecError) as big:
        sync.parse("".join(f"@every 1m echo {i}\n" for i in range(100_000)), "UTC")
    assert str(big.value).startswith(".hoody/crontab:")
    line = int(str(big.value).split(":")[1])
    assert 10_000 < line < 20_000  # where the 256k limit is crossed
    assert "over the server's limit of 256k (limits.max_crontab_bytes" in str(big.value)
    with pytest.raises(SpecError) as often:
        sync.parse("@every 1m echo ok\n@every 1s echo flood\n", "UTC")
    assert str(often.value) == (
        ".hoody/crontab:2: @every 1s: more often than the server allows (limits.min_every = 10s)"
    )
    assert (
        len(sync.parse("".join(f"@every 10s echo {i}\n" for i in range(200)), "UTC").entries) == 200
    )
