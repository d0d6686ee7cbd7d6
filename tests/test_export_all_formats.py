"""Every format at once: no planted secret anywhere, every file parses back, the demo app
and a hostile spec both export (schemas: test_export_schemas.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters import FORMATS, ExportResult, render, source_from_dir
from reconciler.core.crontab import parse_crontab
from reconciler.core.spec import parse_app_spec

from .test_export_support import (
    DEMO,
    SECRETS,
    all_outputs,
    desired_source,
    hostile_results,  # noqa: F401 — a fixture
    hostile_source,
    leaks,
)

ROOT = Path(__file__).resolve().parent.parent


def parse_back(path: str, text: str) -> object:
    """Every file an export writes is valid in its own syntax."""
    if path.endswith(".json"):
        return json.loads(text)
    if path.endswith((".yml", ".yaml")):
        return list(yaml.safe_load_all(text))
    return text


def test_no_planted_secret_in_any_file_of_any_format(
    hostile_results: dict[str, ExportResult],  # noqa: F811
) -> None:
    assert set(hostile_results) == set(FORMATS)
    assert leaks(hostile_results) == []
    server = all_outputs(
        desired_source(
            (DEMO / ".hoody" / "app.yaml").read_text(), (DEMO / ".hoody" / "crontab").read_text()
        )
    )
    assert leaks(server) == []
    for fmt, result in server.items():
        example = result.files[".env.example"]
        assert all(name in example for name in SECRETS), fmt


def test_every_file_of_every_format_parses_back(
    hostile_results: dict[str, ExportResult],  # noqa: F811
) -> None:
    for result in [*hostile_results.values(), *all_outputs(source_from_dir(DEMO)).values()]:
        for path, text in result.files.items():
            parse_back(path, text)


def test_cloudrun_service_and_jobs_are_knative_and_run_v2_shaped() -> None:
    files = render("cloudrun", hostile_source()).files
    (service,) = parse_back("service.yaml", files["service.yaml"])  # type: ignore[misc]
    assert service["apiVersion"] == "serving.knative.dev/v1" and service["kind"] == "Service"
    jobs = [p for p in files if p.startswith("jobs/")]
    schedulers = [p for p in files if p.startswith("scheduler/")]
    assert jobs and len(jobs) == len(schedulers)
    for p in schedulers:
        job = json.loads(files[p])
        assert job["schedule"] and job["timeZone"]


def test_cli_exports_a_working_tree_without_a_server(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler.cli.main",
            "export",
            "kubernetes",
            "--dir",
            str(DEMO),
            "-o",
            str(tmp_path / "k8s"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "k8s" / ".env.example").exists()
    listed = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "export", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert all(fmt in listed.stdout for fmt in FORMATS)


SCHEDULES = st.sampled_from(
    [
        "* * * * *",
        "*/5 * * * *",
        "0 3 * * 1-5",
        "30 2 1 * *",
        "@daily",
        "@hourly",
        "@every 30s",
        "@every 5m",
        "@reboot",
        "0 9 * * MON",
        "15 */2 1,15 * *",
    ]
)
WORDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
).map(lambda s: s.replace("%", "").strip() or "x")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedules=st.lists(SCHEDULES, min_size=1, max_size=4),
    value=WORDS,
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York"]),
)
def test_any_valid_spec_and_crontab_export_to_every_format_and_parse_back(
    schedules: list[str], value: str, zone: str
) -> None:
    spec = parse_app_spec(
        json.dumps(
            {
                "name": "prop",
                "services": {
                    "web": {
                        "image": "busybox:1.36",
                        "command": ["sh", "-c", f"echo {json.dumps(value)}"],
                        "env": {"VALUE": value},
                        "ports": [8080],
                        "volumes": {"data": "/data"},
                        "healthcheck": {"http": "/"},
                    }
                },
                "cron": {"timezone": zone},
            }
        )
    )
    crontab_text = "".join(f"{s} echo job{i}\n" for i, s in enumerate(schedules))
    tab = parse_crontab(crontab_text, default_timezone=zone)
    from exporters import ExportSource

    source = ExportSource("main-prop", spec, tab, {}, False, crontab_text)
    for fmt in FORMATS:
        result = render(fmt, source)
        for path, text in result.files.items():
            parse_back(path, text)
