"""The pure half of the swarm runtime: how a service is specified and how its tasks read
back as versions. Table-driven over Engine API JSON shaped as the engine returns it (the
end-to-end behaviour is in test_swarm.py, on a real swarm)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.model import HealthCheck, Resources
from reconciler.runtime import ContainerSpec
from reconciler.runtime import swarmspec as ss


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
