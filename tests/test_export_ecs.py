"""ECS export: task definitions and schedules pass botocore's own offline parameter
validation for `ecs.RegisterTaskDefinition` and `scheduler.CreateSchedule` (no network),
and every schedule expression is well-formed AWS cron."""

from __future__ import annotations

import json
import math
import re
from functools import cache

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters import render, source_from_dir
from exporters.base import ExportSource
from exporters.ecs import MIB, fargate_size
from reconciler.core.model import Resources, ServiceSpec
from tests.test_export_support import DEMO, hostile_source

_AWS_CRON = re.compile(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)")
_NAME = re.compile(r"[0-9a-zA-Z\-_.]{1,64}")


@cache
def input_shape(service: str, operation: str):  # type: ignore[no-untyped-def]
    session = botocore.session.get_session()
    client = session.create_client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client.meta.service_model.operation_model(operation).input_shape


def check(params: dict, service: str, operation: str, path: str) -> None:
    report = ParamValidator().validate(params, input_shape(service, operation))
    assert not report.has_errors(), f"{path}: {report.generate_report()}"


def files(source: ExportSource) -> dict[str, dict]:
    out = render("ecs", source).files
    return {p: json.loads(t) for p, t in out.items() if p.endswith(".json")}


@pytest.mark.parametrize("values", [False, True])
def test_files_pass_botocore_validation(values: bool) -> None:
    for source in (source_from_dir(DEMO, values), hostile_source(values)):
        docs = files(source)
        assert "task-definition.json" in docs
        schedules = 0
        for path, doc in docs.items():
            if path.endswith(".schedule.json"):
                schedules += 1
                check(doc, "scheduler", "CreateSchedule", path)
                assert _NAME.fullmatch(doc["Name"]), doc["Name"]
                assert_aws_cron(doc["ScheduleExpression"])
            else:
                check(doc, "ecs", "RegisterTaskDefinition", path)
        assert schedules


def assert_aws_cron(expression: str) -> None:
    match = _AWS_CRON.fullmatch(expression)
    assert match, expression
    minute, hour, dom, month, dow, year = match.groups()
    assert (dom == "?") != (dow == "?"), expression  # exactly one of the two
    assert year == "*"
    if dow != "?":
        values = re.split(r"[,-]", dow)
        assert all(v.isdigit() and 1 <= int(v) <= 7 for v in values), expression
    for field in (minute, hour, dom, month):
        assert re.fullmatch(r"[0-9*?/,-]+", field), expression


def test_hostile_schedules_are_converted_or_warned() -> None:
    result = render("ecs", hostile_source())
    docs = {p: json.loads(t) for p, t in result.files.items() if p.endswith(".schedule.json")}
    got = {(d["ScheduleExpression"], d["ScheduleExpressionTimezone"]) for d in docs.values()}
    assert ("cron(0 9 ? * 2-6 *)", "Asia/Kolkata") in got
    assert ("cron(0/15 * * * ? *)", "Asia/Kolkata") in got
    # cron ORs the day fields: AWS cannot, so one schedule per day field
    assert ("cron(30 2 1,15 * ? *)", "Europe/Paris") in got
    assert ("cron(30 2 ? * 2 *)", "Europe/Paris") in got
    assert ("cron(0/5 * * * ? *)", "UTC") in got  # @every 5m
    assert ("cron(30 1 ? * 1 *)", "UTC") in got  # Sunday (7) is 1 in AWS
    text = "\n".join(result.warnings)
    assert "@every 45s" in text and "@reboot" in text
    assert "'0 12 */2 * 1' needs both" in text
    assert result.files["HOODY-EXPORT-WARNINGS.txt"].count("\n- ") == len(result.warnings)


def test_job_task_runs_the_script_as_the_cron_user() -> None:
    docs = files(hostile_source())
    task = next(d for p, d in docs.items() if p.endswith(".task-definition.json"))
    (container,) = task["containerDefinitions"]
    assert container["entryPoint"][:2] == ["/bin/sh", "-c"]
    assert container["user"] == "root"
    assert "command" not in container and "portMappings" not in container


# Fargate task sizes as AWS documents them (Linux): independent of exporters/ecs.py.
GIB = 1024
VALID_SIZES = (
    {(256, m) for m in (512, 1 * GIB, 2 * GIB)}
    | {(512, m * GIB) for m in range(1, 5)}
    | {(1024, m * GIB) for m in range(2, 9)}
    | {(2048, m * GIB) for m in range(4, 17)}
    | {(4096, m * GIB) for m in range(8, 31)}
    | {(8192, m * GIB) for m in range(16, 61, 4)}
    | {(16384, m * GIB) for m in range(32, 121, 8)}
)


def assert_valid_fargate(doc: dict, path: str) -> None:
    size = (int(doc["cpu"]), int(doc["memory"]))
    assert size in VALID_SIZES, f"{path}: {size} is not a Fargate task size"
    containers = doc["containerDefinitions"]
    assert sum(c.get("cpu", 0) for c in containers) <= size[0], path
    assert sum(c.get("memory", 0) for c in containers) <= size[1], path


def test_every_task_definition_is_a_valid_fargate_size_holding_its_containers() -> None:
    from tests.test_export_support import multi_source

    for source in (source_from_dir(DEMO), hostile_source(), multi_source()):
        docs = files(source)
        tasks = {p: d for p, d in docs.items() if p.endswith("task-definition.json")}
        assert len(tasks) > 1
        for path, doc in tasks.items():
            assert_valid_fargate(doc, path)
    # the multi spec's web (cpus 0.5, 256m) runs its jobs: 512 units, not 256
    docs = files(multi_source())
    job = next(d for p, d in docs.items() if p.startswith("cron/") and "task-def" in p)
    assert (job["cpu"], job["memory"]) == ("512", "1024")
    main = docs["task-definition.json"]  # 0.5 + 1.5 + 0.25 vCPU, 256m + 1g + 512m
    assert (main["cpu"], main["memory"]) == ("4096", "8192")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(0.01, 6.0)),
            st.one_of(st.none(), st.integers(4, 40 * 1024)),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fargate_size_is_always_valid_and_smallest(limits: list) -> None:
    services = [
        ServiceSpec(f"s{i}", image="x", resources=Resources(mem and mem * MIB, cpus))
        for i, (cpus, mem) in enumerate(limits)
    ]
    cpu = sum(math.ceil((c or 0) * 1024) for c, _ in limits)
    memory = sum(max(6, m) if m else 0 for _, m in limits)
    size = fargate_size(services)
    fitting = sorted(s for s in VALID_SIZES if s[0] >= cpu and s[1] >= memory)
    if not fitting:
        assert size is None
    else:
        assert size == fitting[0]
