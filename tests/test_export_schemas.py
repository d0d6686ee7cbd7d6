"""Every file of every format, for the example app, a multi-service spec and the hostile
spec, validated against the platform's own published schema (tests/export_schemas.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from exporters import FORMATS, ExportSource, render, source_from_dir

from . import export_schemas as s
from .test_export_support import DEMO, hostile_source, multi_source

Check = Callable[[Any, str], None]

CHECKS: dict[str, list[tuple[Callable[[str], bool], Check]]] = {
    "compose": [(lambda p: p == "docker-compose.yml", s.check_compose)],
    "kubernetes": [(lambda p: p.endswith(".yaml"), s.check_kubernetes)],
    "cloudrun": [
        (lambda p: p == "service.yaml", s.check_cloudrun_service),
        (lambda p: p.startswith("jobs/"), s.check_cloudrun_job),
        (lambda p: p.startswith("scheduler/"), s.check_cloud_scheduler_job),
    ],
    "ecs": [
        (lambda p: p.endswith("task-definition.json"), s.check_ecs_task_definition),
        (lambda p: p.endswith(".schedule.json"), s.check_eventbridge_schedule),
    ],
    "render": [(lambda p: p == "render.yaml", s.check_render)],
    "railway": [(lambda p: p == ".railway/railway.py", s.check_railway_program)],
    "vercel": [(lambda p: p == "vercel.json", s.check_vercel)],
}
NOT_SCHEMA_FILES = {".env.example", "HOODY-EXPORT-WARNINGS.txt"}

SOURCES: dict[str, Callable[[], ExportSource]] = {
    "example": lambda: source_from_dir(DEMO),
    "example-values": lambda: source_from_dir(DEMO, include_spec_values=True),
    "multi": multi_source,
    "multi-values": lambda: multi_source(include_spec_values=True),
    "hostile": hostile_source,
}


def parse(path: str, text: str) -> Any:
    if path.endswith(".py"):
        return text
    if path.endswith(".json"):
        return json.loads(text)
    (doc,) = list(yaml.safe_load_all(text))
    return doc


def test_every_format_has_its_checks() -> None:
    assert set(CHECKS) == set(FORMATS)


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_file_is_valid_against_the_platform_schema(fmt: str, source: str) -> None:
    files = render(fmt, SOURCES[source]()).files
    checked = 0
    for path, text in files.items():
        if path in NOT_SCHEMA_FILES:
            continue
        checks = [check for match, check in CHECKS[fmt] if match(path)]
        assert checks, f"{fmt}/{path} has no schema check"
        for check in checks:
            check(parse(path, text), f"{fmt}/{path}")
        checked += 1
    assert checked, f"{fmt} wrote no file to check"


def _first(fmt: str, pick: Callable[[str], bool]) -> tuple[str, Any]:
    files = render(fmt, multi_source()).files
    path = next(p for p in files if pick(p))
    return path, parse(path, files[path])


# (format, file, how to break it): each check must refuse what its platform refuses.
BREAKS: list[tuple[str, Callable[[str], bool], Callable[[Any], Any]]] = [
    ("compose", lambda p: p == "docker-compose.yml", lambda d: d["services"]["web"].update(x=1)),
    ("kubernetes", lambda p: p.startswith("cronjob-"), lambda d: d["spec"].update(timezone="UTC")),
    (
        "kubernetes",
        lambda p: p.startswith("deployment-"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(cpu="1"),
    ),
    (
        "cloudrun",
        lambda p: p == "service.yaml",
        lambda d: d["spec"]["template"]["spec"].update(concurrency=1),
    ),
    (
        "cloudrun",
        lambda p: p.startswith("jobs/"),
        lambda d: d["spec"]["template"]["spec"].update(retries=1),
    ),
    ("cloudrun", lambda p: p.startswith("scheduler/"), lambda d: d.update(timezone="UTC")),
    ("ecs", lambda p: p == "task-definition.json", lambda d: d.update(cpu=256)),
    ("ecs", lambda p: p.endswith(".schedule.json"), lambda d: d["Target"].pop("Arn")),
    ("render", lambda p: p == "render.yaml", lambda d: d["services"][0].update(kind="web")),
    ("railway", lambda p: p.endswith(".py"), lambda d: d.replace("'cronSchedule'", "'cron'")),
    ("vercel", lambda p: p == "vercel.json", lambda d: d.update(crons=[{"path": "x"}])),
]


@pytest.mark.parametrize(("fmt", "pick", "breaks"), BREAKS)
def test_the_checks_refuse_what_the_platform_refuses(
    fmt: str, pick: Callable[[str], bool], breaks: Callable[[Any], Any]
) -> None:
    path, doc = _first(fmt, pick)
    broken = breaks(doc)  # changes a document in place; returns a changed text
    doc = broken if isinstance(doc, str) else doc
    checks = [check for match, check in CHECKS[fmt] if match(path)]
    for check in checks:
        with pytest.raises(AssertionError):
            check(doc, path)


def test_vercel_crons_take_no_time_zone_in_either_schema() -> None:
    doc = {"crons": [{"path": "/x", "schedule": "0 3 * * *", "timezone": "Europe/Paris"}]}
    with pytest.raises(AssertionError, match=r"CLI 64\.0\.2"):
        s.check_vercel(doc, "vercel.json")


def test_render_warns_that_a_shared_volume_becomes_separate_disks() -> None:
    result = render("render", multi_source())
    blueprint = yaml.safe_load(result.files["render.yaml"])
    disks = [s["disk"]["name"] for s in blueprint["services"] if "disk" in s]
    assert disks == ["uploads", "uploads"]  # two disks of the same name, nothing shared
    assert any(
        "volume 'uploads' is shared by services web, api" in w and "share nothing" in w
        for w in result.warnings
    )


def test_vercel_carries_no_zone_and_says_why() -> None:
    result = render("vercel", multi_source())
    doc = json.loads(result.files["vercel.json"])
    assert doc["crons"] and all(set(c) == {"path", "schedule"} for c in doc["crons"])
    # 03:00 in Paris is not one UTC time all year: written as is, with the reason
    assert {"path": "/nightly?full=1", "schedule": "0 3 * * *"} in doc["crons"]
    assert any(
        "Vercel crons take no time zone" in w and "Europe/Paris" in w for w in result.warnings
    )
    # */10 is the same in every offset of the zone: exact, no warning for it
    assert {"path": "/tasks/expire", "schedule": "*/10 * * * *"} in doc["crons"]
    assert not any(".hoody/crontab:3:" in w for w in result.warnings)
