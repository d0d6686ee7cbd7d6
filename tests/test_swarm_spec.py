"""The pure half of the swarm runtime: how a service is specified and how its tasks read
back as versions. Table-driven over Engine API JSON shaped as the engine returns it (the
end-to-end behaviour is in test_swarm.py, on a real swarm)."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from reconciler.core.errors import RuntimeConflict, RuntimeFailure, retry_delay
from reconciler.core.model import HealthCheck, Resources
from reconciler.runtime import ContainerSpec
from reconciler.runtime import swarmops as ops
from reconciler.runtime import swarmspec as ss
from reconciler.runtime.engine import engine
from reconciler.runtime.swarm import SwarmRuntime


def task(h: str, state: str, desired: str = "running", created: str = "2026-01-01T00:00:01Z",
         **status: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "Spec": {"ContainerSpec": {"Labels": {"hoody.spec-hash": h}}},
        "DesiredState": desired,
        "CreatedAt": created,
        "Status": {"State": state, **status},
    }


def service(h: str, update: str = "", message: str = "") -> dict[str, Any]:
    return {
        "ID": "sid",
        "UpdatedAt": "2026-01-01T00:00:00Z",
        "Spec": {"Name": "env_web", "Labels": {"hoody.spec-hash": h}},
        "UpdateStatus": {"State": update, "Message": message} if update else None,
    }


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("sid:abc", ("sid", "abc", False)),
        ("sid:abc:next", ("sid", "abc", True)),
        ("env_web", ("env_web", None, False)),
    ],
)
def test_a_handle_names_one_version_of_one_service(text: str, parsed: tuple[Any, ...]) -> None:
    assert ss.parse_handle(text) == parsed
    if parsed[1]:
        assert ss.handle(parsed[0], parsed[1], rolling=parsed[2]) == text


def test_host_mode_ports_read_the_ipv4_binding_first() -> None:
    t = task("a", "running", PortStatus={"Ports": [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 32781, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 32778, "PublishMode": "host"},
    ]})  # fmt: skip
    assert ss.task_ports(t) == {8080: 32781}


@pytest.mark.parametrize(
    ("svc", "tasks", "want"),
    [
        # a new service whose task the orchestrator has not created yet: pending, not dead
        (service("a"), [], (True, "pending", None)),
        # the live task stands for the version, starting before running
        (service("a"), [task("a", "starting")], "starting"),
        # a task of the version that exited: not running, with its exit code
        (
            service("a"),
            [
                task(
                    "a",
                    "failed",
                    "shutdown",
                    Err="task: non-zero exit (3)",
                    ContainerStatus={"ExitCode": 3},
                )
            ],
            (False, "task task: non-zero exit (3)", 3),
        ),
        # a version being rolled to whose task failed before the swarm's monitor saw it:
        # the update is rolled back (by the swarm, or by the apply that abandons it)
        (
            {**service("a", "updating", "update in progress"), "PreviousSpec": {"Name": "x"}},
            [task("a", "failed", "shutdown", Err="task: non-zero exit (3)")],
            (
                False,
                "task task: non-zero exit (3); the update is rolled back to the previous version",
                None,
            ),
        ),
        # ...also while the swarm still shows the status of the update before it (started
        # before the spec changed): the task failed before this update's status was set
        (
            {
                **service("a", "completed", "update completed"),
                "PreviousSpec": {"Name": "x"},
                "UpdateStatus": {"State": "completed", "StartedAt": "2025-12-31T23:59:00Z"},
            },
            [task("a", "failed", "shutdown", Err="task: non-zero exit (3)")],
            (
                False,
                "task task: non-zero exit (3); the update is rolled back to the previous version",
                None,
            ),
        ),
        # a crash of a version whose update completed after the spec changed: no rollback
        (
            {
                **service("a", "completed", "update completed"),
                "PreviousSpec": {"Name": "x"},
                "UpdateStatus": {"State": "completed", "StartedAt": "2026-01-01T00:00:01Z"},
            },
            [task("a", "failed", "shutdown", Err="task: non-zero exit (3)")],
            (False, "task task: non-zero exit (3)", None),
        ),
        # the swarm rolled back from b to a: version b is gone, and says why
        (
            service("a", "rollback_completed", "rollback completed"),
            [task("a", "running")],
            (False, "rolled back by the swarm: rollback completed", None),
        ),
    ],
)
def test_a_version_reads_back_from_its_tasks(svc: Any, tasks: Any, want: Any) -> None:
    h = "b" if "rollback" in str(svc.get("UpdateStatus")) else "a"
    got = ss.version_state(svc, h, tasks)
    if isinstance(want, str):
        assert isinstance(got, dict) and ss.task_state(got) == want
    else:
        assert got == want


def test_the_service_spec_rolls_start_first_and_publishes_in_host_mode() -> None:
    spec = ContainerSpec(
        name="env_web_next-1",
        image="busybox:1.36",
        labels={"hoody.managed": "true", "hoody.spec-hash": "h"},
        network="env",
        alias="web",
        command=("httpd", "-f"),
        ports=(8080,),
        resources=Resources(memory=64 << 20, cpus=0.5),
        healthcheck=HealthCheck(http="/ready", port=8080, interval=0.5),
    )
    args = ss.service_args(spec, "env_web", "netid")
    assert args["name"] == "env_web"
    assert args["update_config"]["Order"] == "start-first"
    assert args["update_config"]["FailureAction"] == "rollback"
    assert args["endpoint_spec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}
    ]  # no PublishedPort: the engine picks one per task
    container = args["task_template"]["ContainerSpec"]
    assert container["Args"] == ["httpd", "-f"] and container.get("Command") is None
    hc = container["Healthcheck"]
    assert "http://127.0.0.1:8080/ready" in hc["Test"][1]
    assert hc["Interval"] == int(ss.MIN_SWARM_INTERVAL * ss.NS)  # never below the floor
    assert args["task_template"]["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000,
        "MemoryBytes": 64 << 20,
    }
    (net,) = args["task_template"]["Networks"]
    assert net["Target"] == "netid" and net["Aliases"] == ["web"]


# -- writes at a version the swarm moved on ---------------------------------------------


def test_update_out_of_sequence_is_a_retryable_conflict() -> None:
    explanation = "rpc error: code = Unknown desc = update out of sequence"
    with pytest.raises(RuntimeConflict) as conflict, engine("update service env_web"):
        raise docker.errors.APIError("500 Server Error", explanation=explanation)
    assert conflict.value.retryable and retry_delay(conflict.value) == 2.0
    assert str(conflict.value) == f"update service env_web: {explanation}"
    with pytest.raises(RuntimeFailure) as other, engine("update service env_web"):
        raise docker.errors.APIError("500 Server Error", explanation="invalid mount")
    assert type(other.value) is RuntimeFailure and not other.value.retryable


class FakeSwarm:
    """Just enough of the low-level client for swarmops: a service whose version the
    swarm moves on `moves` times between a read and the write that follows it."""

    def __init__(self, moves: int) -> None:
        self.version, self.moves = 10, moves
        self.posts: list[tuple[int, dict[str, Any]]] = []

    def inspect_service(self, sid: str) -> dict[str, Any]:
        spec = {"Name": "env_web", "TaskTemplate": {"ForceUpdate": 0}}
        return {"ID": sid, "Version": {"Index": self.version}, "Spec": spec}

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _post_json(self, url: str, data: dict[str, Any], params: dict[str, Any]) -> int:
        if self.moves:
            self.moves -= 1
            self.version += 1  # a rollback's step landed after the read
            raise docker.errors.APIError("500", explanation="update out of sequence")
        assert params["version"] == self.version  # written at the version just read
        self.posts.append((params["version"], data))
        self.version += 1
        return 200

    def _raise_for_status(self, response: int) -> None:
        pass


def test_a_forced_restart_reads_the_service_again_when_the_swarm_moved_it() -> None:
    api = FakeSwarm(moves=2)
    stale = api.inspect_service("sid")
    ops.force_restart(api, stale)
    ((version, spec),) = api.posts
    assert version == 12 and spec["TaskTemplate"]["ForceUpdate"] == 1


def test_a_service_that_keeps_moving_gives_up_with_the_conflict() -> None:
    api = FakeSwarm(moves=99)
    with pytest.raises(RuntimeConflict, match="out of sequence"):
        ops.rollback(api, api.inspect_service("sid"))
    assert api.posts == [] and api.moves == 99 - 5


class FakeService(FakeSwarm):
    """A service at version b of an update from a, whose b task exited at once."""

    def __init__(self, previous: bool) -> None:
        super().__init__(moves=0)
        self.previous = previous
        self.removed: list[str] = []

    def inspect_service(self, sid: str) -> dict[str, Any]:
        svc = service("b", "updating", "update in progress")
        svc["Version"] = {"Index": self.version}
        svc["Spec"]["TaskTemplate"] = {"ForceUpdate": 0}
        if self.previous:
            svc["PreviousSpec"] = {"Name": "env_web", "Labels": {"hoody.spec-hash": "a"}}
        return svc

    def tasks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return [task("b", "failed", "shutdown", Err="task: non-zero exit (3)")]

    def remove_service(self, sid: str) -> None:
        self.removed.append(sid)


class FakeSwarmRuntime(SwarmRuntime):
    def __init__(self, api: FakeService) -> None:
        super().__init__(sleep=lambda _s: None)
        self.fake = api

    @property
    def api(self) -> Any:
        return self.fake


def test_a_rolling_version_whose_task_failed_is_not_forced_to_restart() -> None:
    """Forcing a new task during the update would make the failing spec the one the
    swarm rolls back to."""
    api = FakeService(previous=True)
    FakeSwarmRuntime(api).start_container(ss.handle("sid", "b", rolling=True))
    assert api.posts == []
    FakeSwarmRuntime(api).start_container(ss.handle("sid", "b"))  # a stopped version: forced
    ((_, spec),) = api.posts
    assert spec["TaskTemplate"]["ForceUpdate"] == 1


def test_an_abandoned_update_rolls_back_and_never_removes_the_service() -> None:
    api = FakeService(previous=True)
    FakeSwarmRuntime(api).remove_container(ss.handle("sid", "b", rolling=True))
    assert len(api.posts) == 1 and api.removed == []  # the swarm's rollback, once
    api = FakeService(previous=False)  # nothing to roll back to: left as it is
    FakeSwarmRuntime(api).remove_container(ss.handle("sid", "b", rolling=True))
    assert api.posts == [] and api.removed == []
