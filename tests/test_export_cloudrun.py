"""Cloud Run export: CPU limits and concurrency Cloud Run accepts (checked here against
its documented rules, independently of the exporter), warnings for what changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from exporters import ExportSource, render
from reconciler.core.spec import parse_app_spec

from .test_export_support import hostile_source, multi_source

GIB = 1024


def cpu_value(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def mib(text: str) -> int:
    assert text.endswith("Mi"), text
    return int(text[:-2])


def assert_cloud_run_accepts(containers: list[dict[str, Any]], concurrency: int | None) -> None:
    """Cloud Run's rules: 0.08-1 vCPU only with concurrency 1; above 1 only 2, 4, 6, 8;
    memory above 4/8/16/24 GiB needs 2/4/6/8 vCPUs."""
    for c in containers:
        limits = c.get("resources", {}).get("limits", {})
        cpu = cpu_value(limits["cpu"]) if "cpu" in limits else 1.0
        if cpu < 1:
            assert cpu >= 0.08, c["name"]
            assert concurrency == 1, f"{c['name']}: cpu {cpu} needs concurrency 1"
        else:
            assert cpu in (1, 2, 4, 6, 8), f"{c['name']}: cpu {cpu}"
        memory = mib(limits["memory"]) if "memory" in limits else 512
        for above, least in ((4 * GIB, 2), (8 * GIB, 4), (16 * GIB, 6), (24 * GIB, 8)):
            if memory > above:
                assert cpu >= least, f"{c['name']}: {memory} MiB with {cpu} vCPU"


def sized(cpus: float | None, memory: str | None) -> ExportSource:
    resources = {k: v for k, v in (("cpus", cpus), ("memory", memory)) if v is not None}
    spec = json.dumps(
        {
            "name": "sized",
            "services": {"web": {"image": "busybox:1.36", "ports": [8080], "resources": resources}},
        }
    )
    app = parse_app_spec(spec, ".hoody/app.yaml", "sized")
    from reconciler.core.crontab import parse_crontab

    tab = parse_crontab("*/5 * * * * echo hi\n", ".hoody/crontab", "UTC")
    return ExportSource("main-sized", app, tab, {}, False, None)


def check(source: ExportSource) -> list[str]:
    result = render("cloudrun", source)
    (service,) = yaml.safe_load_all(result.files["service.yaml"])
    spec = service["spec"]["template"]["spec"]
    assert_cloud_run_accepts(spec["containers"], spec.get("containerConcurrency"))
    for path, text in result.files.items():
        if path.startswith("jobs/"):
            (job,) = yaml.safe_load_all(text)
            containers = job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
            for c in containers:
                c.setdefault("name", "job")
            assert_cloud_run_accepts(containers, 1)  # a job task serves no requests
    return result.warnings


def test_the_multi_service_and_hostile_specs_are_accepted() -> None:
    warnings = "\n".join(check(multi_source()))
    assert "containerConcurrency 1" in warnings and "(web, worker)" in warnings
    assert "cpus 1.5 exported as 2 vCPU" in warnings
    check(hostile_source())


@pytest.mark.parametrize(
    ("cpus", "memory", "cpu", "concurrency", "warned"),
    [
        (0.5, None, "500m", 1, "containerConcurrency 1"),
        (0.01, None, "80m", 1, "smallest CPU is 0.08"),
        (1.0, None, "1", None, None),
        (1.5, None, "2", None, "cpus 1.5 exported as 2 vCPU"),
        (3, None, "4", None, "cpus 3.0 exported as 4 vCPU"),
        (12, None, "8", None, "8 is the most"),
        (1, "10g", "4", None, "needs at least 4"),
        (2, "20g", "6", None, "needs at least 6"),
        (None, "5g", "2", None, "needs at least 2"),
        (None, "256m", None, None, None),
    ],
)
def test_cpu_and_concurrency_follow_cloud_runs_rules(
    cpus: float | None,
    memory: str | None,
    cpu: str | None,
    concurrency: int | None,
    warned: str | None,
) -> None:
    source = sized(cpus, memory)
    warnings = check(source)
    (service,) = yaml.safe_load_all(render("cloudrun", source).files["service.yaml"])
    spec = service["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container.get("resources", {}).get("limits", {}).get("cpu") == cpu
    assert spec.get("containerConcurrency") == concurrency
    if warned:
        assert any(warned in w for w in warnings), warnings
    else:
        assert not any("vCPU" in w or "CPU" in w for w in warnings), warnings
