"""Compose export, schedules in time zones: each zoned entry converted on its own (not by
ofelia's TZ), and on the real engine only the job of the offset in force runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from exporters import render
from exporters.base import ExportSource
from reconciler.core.crontab import parse_crontab
from reconciler.core.spec import parse_app_spec

from .conftest import RUN_ID
from .test_export_compose import UP_SPEC, gobs_args

ZONED_CRONTAB = """CRON_TZ=America/New_York
0 9 * * 1-5 echo ran-9-new-york
CRON_TZ=Asia/Kolkata
30 9 * * * echo ran-kolkata
CRON_TZ=UTC
@every 90s echo tick
@every 10m echo aligned
"""


def zoned_labels() -> tuple[dict[str, str], list[str]]:
    app = parse_app_spec(UP_SPEC, ".hoody/app.yaml", "upcheck")
    tab = parse_crontab(ZONED_CRONTAB, ".hoody/crontab", "UTC")
    result = render("compose", ExportSource("main-zoned", app, tab, {}, True, ZONED_CRONTAB))
    doc = yaml.safe_load(result.files["docker-compose.yml"])
    labels = {k: v.replace("$$", "$") for k, v in doc["services"]["web"]["labels"].items()}
    return labels, result.warnings  # `$$` read back as Compose reads it


def test_each_zoned_entry_is_converted_on_its_own_not_by_ofelias_tz() -> None:
    labels, warnings = zoned_labels()
    schedules = {k.split(".")[2]: v for k, v in labels.items() if k.endswith(".schedule")}
    new_york = {k: v for k, v in schedules.items() if k.startswith("echo-") and "-utc" in k}
    # 09:00 in New York is 14:00 UTC under EST (-05:00) and 13:00 UTC under EDT (-04:00)
    assert sorted(new_york.values()) == ["0 0 13 * * 1-5", "0 0 14 * * 1-5"]
    assert {k.rsplit("-", 1)[1] for k in new_york} == {"utcm0500", "utcm0400"}
    assert "0 0 4 * * *" in schedules.values()  # Kolkata, +05:30 all year: exact, one job
    assert "@every 90s" in schedules.values()
    assert "0 */10 * * * *" in schedules.values()  # epoch-aligned: exact as cron
    text = "\n".join(warnings)
    assert "America/New_York changes its offset" in text
    assert "ofelia counts @every from its own start" in text and "@every 10m" not in text
    assert "run ofelia with TZ" not in text


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_only_the_job_of_the_offset_in_force_runs(docker_engine: Any) -> None:
    """Both New York jobs run in busybox now: exactly the one for today's offset works."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    labels, _ = zoned_labels()
    now = datetime.now(ZoneInfo("America/New_York")).strftime("%z")
    outputs = {}
    for key, command in labels.items():
        if key.endswith(".command") and "new-york" in command:
            argv = gobs_args(command)
            out = docker_engine.containers.run(
                "busybox:1.36", argv, remove=True, labels={"hoody.test": RUN_ID}
            )
            outputs[key.split(".")[2].rsplit("-", 1)[1]] = out.decode().strip()
    expected = "utcm0400" if now == "-0400" else "utcm0500"
    assert outputs == {
        "utcm0400": "ran-9-new-york" if expected == "utcm0400" else "",
        "utcm0500": "ran-9-new-york" if expected == "utcm0500" else "",
    }
