"""ECS export: task definitions and schedules pass botocore's own offline parameter
validation for `ecs.RegisterTaskDefinition` and `scheduler.CreateSchedule` (no network),
and every schedule expression is well-formed AWS cron."""

from __future__ import annotations

import json
import re
from functools import cache

import botocore.session
import pytest
from botocore.validate import ParamValidator

from exporters import render, source_from_dir
from exporters.base import ExportSource
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
