"""What a platform cannot express is a warning, in the result and in
HOODY-EXPORT-WARNINGS.txt: for the multi-service spec, each format's own list."""

from __future__ import annotations

import pytest

from exporters import FORMATS, render

from .test_export_support import multi_source

EXPECTED = {
    "compose": [
        "Europe/Paris changes its offset, so it is one ofelia job per offset",
        "ofelia counts @every from its own start",
        "cron.timeout (600s): jobs are not stopped",
    ],
    "kubernetes": [
        "set IMAGE_WEB to the pushed image",
        "1Gi ReadWriteOnce PersistentVolumeClaim",
        "@every 90s echo tick: not exported",
    ],
    "ecs": [
        "ECS gives a scheduled task no name for it: set WEB_URL",
        "ECS gives a scheduled task no name for it: set API_URL",
        "AWS cannot, so it is two schedules",
        "all services share one Fargate task",
    ],
    "cloudrun": [
        "containerConcurrency 1 when a container has less than 1 vCPU (web, worker)",
        "cpus 1.5 exported as 2 vCPU",
        "Cloud Run gives service 'api' no name it can reach",
        "the service must let them in",
    ],
    "render": [
        "volume 'uploads' is shared by services web, api",
        "Render reads schedules in UTC, and Europe/Paris changes its UTC offset",
        "Render cron jobs cannot mount the service's disk",
    ],
    "railway": [
        "volume 'uploads' is shared by services web, api",
        "<service>.railway.internal",
        "Railway reads schedules in UTC, and Europe/Paris changes its UTC offset",
    ],
    "vercel": [
        "Vercel runs no containers",
        "Vercel crons take no time zone",
        "not exportable: Vercel crons only call the app over HTTP",
    ],
}
# Said by no format for this spec: nothing is lost without a reason, nothing is invented.
NEVER = ["railway.json", "run ofelia with TZ"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_warns_about_what_it_cannot_express(fmt: str) -> None:
    result = render(fmt, multi_source())
    text = "\n".join(result.warnings) + "\n"
    for expected in EXPECTED[fmt]:
        assert expected in text, f"{fmt}: no warning {expected!r}"
    for never in NEVER:
        assert never not in text, f"{fmt}: {never!r}"
    listed = result.files["HOODY-EXPORT-WARNINGS.txt"]
    assert all(f"- {w}" in listed for w in result.warnings)
    assert "service 'web': ports [8080] reachable on localhost only" not in text
