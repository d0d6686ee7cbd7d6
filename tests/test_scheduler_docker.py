"""The schedule ships with the branch: real git, real containers, real time.

These tests wait for outcomes (runs recorded) with generous deadlines; they never assert
how long something took."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from reconciler.core.settings import LimitsSettings, RepoSettings, SchedulerSettings, Settings
from reconciler.runtime.docker import DockerRuntime

from .conftest import GitRemote, unique
from .webhook_helpers import LiveService, wait_for

pytestmark = pytest.mark.docker


def spec(app: str, cron: str = "") -> str:
    return f"""\
name: {app}
image: busybox:1.36
command: ["sleep", "3600"]
cron: {{timeout: 3, {cron}}}
"""


def settings(tmp_path: Path, repo: str, remote: GitRemote) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        repos=(
            RepoSettings(
                name=repo, url=str(remote.bare), branches=("main", "feature/*"), poll_interval=0
            ),
        ),
        scheduler=SchedulerSettings(shutdown_grace=0.5, kill_grace=1.0),
        limits=LimitsSettings(min_every=1.0),  # these schedules fire every few seconds
    )


def runs(live: LiveService, env: str, status: str | None = None) -> list:
    return list(reversed(live.store.runs.list(env=env, status=status, limit=500)))


def test_tick_switches_to_tock_without_losing_or_doubling_a_run_and_bad_lines_are_refused(
    tmp_path: Path, remote: GitRemote, docker_repo: str
) -> None:
    app = unique("a")
    env = f"main-{app}"
    remote.commit("main", {".hoody/app.yaml": spec(app), ".hoody/crontab": "@every 2s echo tick\n"})
    with LiveService(settings(tmp_path, docker_repo, remote), DockerRuntime()) as live:
        wait_for(lambda: len(runs(live, env, "succeeded")) >= 2, 60, "tick runs")
        assert all(r.stdout.strip() == "tick" for r in runs(live, env, "succeeded"))

        remote.commit("main", {".hoody/crontab": "# tock now\n@every 2s echo tock\n"})
        live.service.trigger(docker_repo)
        wait_for(
            lambda: any(r.stdout.strip() == "tock" for r in runs(live, env, "succeeded")),
            60,
            "a tock run",
        )
        wait_for(
            lambda: sum(r.stdout.strip() == "tock" for r in runs(live, env, "succeeded")) >= 2,
            60,
            "two tock runs",
        )

        # A bad line: the previous schedule keeps running, the line is reported.
        remote.commit("main", {".hoody/crontab": "@every 2s echo tock\n61 * * * * echo bad\n"})
        live.service.trigger(docker_repo)
        live.settle()
        rejected = wait_for(
            lambda: live.store.events(env=env, kind="schedule_rejected"), 30, "rejection event"
        )
        assert ".hoody/crontab:2:" in rejected[0].message
        status = wait_for(
            lambda: (e := live.store.environment(env))["status"] == "degraded" and e,
            30,
            "the environment to show the rejection",
        )
        assert status["last_error"].startswith("schedule rejected: .hoody/crontab:2:")
        count = len(runs(live, env, "succeeded"))
        wait_for(lambda: len(runs(live, env, "succeeded")) >= count + 2, 60, "still running")

    done = [r for r in runs(live, env) if r.trigger == "schedule" and r.status == "succeeded"]
    slots = [r.scheduled_for for r in done]
    assert len(slots) == len(set(slots)), "a firing ran twice"
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(slots)}
    assert gaps == {2.0}, f"a firing was lost across the swap: {gaps}"
    switch = next(i for i, r in enumerate(done) if r.stdout.strip() == "tock")
    assert all(r.stdout.strip() == "tick" for r in done[:switch])
    assert all(r.stdout.strip() == "tock" for r in done[switch:])


def test_timeout_kills_every_process_of_the_job_and_branch_deletion_cancels(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": spec(app)})
    crontab = "@every 1h sh -c 'sleep 1000 & sleep 1001 & wait'\n@every 1h sleep 1002\n"
    remote.commit(
        "feature/jobs",
        {".hoody/app.yaml": spec(app, "concurrency: forbid"), ".hoody/crontab": crontab},
        base="main",
    )
    env = f"feature-jobs-{app}"
    with LiveService(settings(tmp_path, docker_repo, remote), DockerRuntime()) as live:
        live.settle()
        slow, forever = sorted(live.service.scheduler.entries(env), key=lambda s: s.entry.line)
        run_id = live.service.scheduler.trigger(env, slow.entry.id)
        assert run_id is not None
        record = wait_for(
            lambda: (r := live.store.runs.get(run_id)) and r.status != "running" and r,
            60,
            "the timeout",
        )
        assert record.status == "timed_out"
        container = docker_engine.containers.get(f"{env}_app")
        ps = container.exec_run(["ps", "-o", "args"]).output.decode()
        assert "sleep 1000" not in ps and "sleep 1001" not in ps, ps

        # Deleting the branch removes the environment, its schedule, and cancels a run.
        long_id = live.service.scheduler.trigger(env, forever.entry.id)
        wait_for(
            lambda: "sleep 1002" in container.exec_run(["ps", "-o", "args"]).output.decode(),
            30,
            "the long job to start",
        )
        remote.delete_branch("feature/jobs")
        live.service.trigger(docker_repo)
        live.settle()
        record = wait_for(
            lambda: (r := live.store.runs.get(long_id)) and r.status != "running" and r,
            30,
            "the cancellation",
        )
        assert record.status == "cancelled"
        assert live.service.scheduler.entries(env) == []


def test_restart_records_interrupted_and_catches_up_once(
    tmp_path: Path, remote: GitRemote, docker_repo: str
) -> None:
    app = unique("a")
    env = f"main-{app}"
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": spec(app, "starting_deadline: 600"),
            ".hoody/crontab": "@every 4s sleep 2; echo slept\n",
        },
    )
    cfg = settings(tmp_path, docker_repo, remote)
    cfg = replace(cfg, scheduler=replace(cfg.scheduler, shutdown_grace=0.1))
    with LiveService(cfg, DockerRuntime()) as live:
        wait_for(lambda: runs(live, env, "succeeded"), 60, "a first run")
        wait_for(lambda: runs(live, env, "running"), 60, "a run in progress")
    # Stopped mid-run: that run is interrupted, not lost silently.
    interrupted = [r for r in runs(live, env) if r.status == "interrupted"]
    assert interrupted
    time.sleep(9)  # the service is down across at least two scheduled slots
    with LiveService(cfg, DockerRuntime()) as live:
        catch = wait_for(
            lambda: [r for r in runs(live, env) if r.trigger == "catch-up"], 60, "the catch-up run"
        )
        time.sleep(1)
        assert len([r for r in runs(live, env) if r.trigger == "catch-up"]) == 1
        wait_for(
            lambda: live.store.runs.get(catch[0].id).status == "succeeded", 30, "catch-up to finish"
        )


def test_reboot_runs_when_the_environment_starts_and_when_its_container_is_recreated(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    env = f"main-{app}"

    def app_yaml(boot: str) -> str:
        return spec(app) + f"env: {{BOOT: {boot}}}\n"

    remote.commit(
        "main",
        {".hoody/app.yaml": app_yaml("one"), ".hoody/crontab": "@reboot echo booted $BOOT\n"},
    )

    def reboots(live: LiveService) -> list:
        return [r for r in runs(live, env) if r.trigger == "reboot"]

    with LiveService(settings(tmp_path, docker_repo, remote), DockerRuntime()) as live:
        first = wait_for(
            lambda: [r for r in reboots(live) if r.status == "succeeded"], 60, "the @reboot run"
        )
        assert [r.stdout.strip() for r in first] == ["booted one"]
        created = docker_engine.containers.get(f"{env}_app").id

        live.service.trigger(docker_repo)  # a plain pass: nothing changed, nothing restarted
        live.settle()
        assert len(reboots(live)) == 1

        remote.commit("main", {".hoody/app.yaml": app_yaml("two")})  # a new container
        live.service.trigger(docker_repo)
        live.settle()
        both = wait_for(
            lambda: (r := reboots(live)) and len(r) == 2 and r[1].status == "succeeded" and r,
            60,
            "the @reboot run in the new container",
        )
        assert [r.stdout.strip() for r in both] == ["booted one", "booted two"]
        assert docker_engine.containers.get(f"{env}_app").id != created
        live.service.trigger(docker_repo)
        live.settle()
        assert len(reboots(live)) == 2
