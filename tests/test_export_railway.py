"""Railway export: `.railway/railway.py` evaluated with Railway's own Python SDK
(railway-sdk, offline) to the project graph the Railway CLI plans: every service, volume,
variable and cron service, with values exactly as the spec has them."""

from __future__ import annotations

from typing import Any

import pytest

from exporters import render, source_from_dir

from .export_schemas import railway_graph
from .test_export_support import DEMO, SECRETS, hostile_source, multi_source


def graph(source: Any) -> dict[str, Any]:
    text = render("railway", source).files[".railway/railway.py"]
    assert text.isascii()
    return railway_graph(text, ".railway/railway.py")


def nodes(g: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in g["resources"] if r["type"] == kind}


def test_the_multi_service_environment_is_one_project() -> None:
    g = graph(multi_source())
    assert g["name"] == "main-shop"
    services = nodes(g, "service")
    crons = {n: s for n, s in services.items() if n.startswith("cron-")}
    assert set(services) - set(crons) == {"web", "api", "worker"}
    assert len(crons) == 4  # @every 90s is not a cron schedule: warned, not exported
    web, api = services["web"], services["api"]
    assert web["source"] == {
        "type": "github",
        "repo": "org/app",
        "branch": "main",
        "rootDirectory": "app",
    }
    assert web["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
    assert api["source"] == {"type": "image", "image": "busybox:1.36"}
    assert web["deploy"]["limitOverride"] == {"containers": {"cpu": 0.5, "memoryBytes": 256 << 20}}
    assert web["variables"]["API_TOKEN"] == {"type": "sharedReference", "name": "API_TOKEN"}
    volumes = nodes(g, "volume")
    assert set(volumes) == {"main-shop-web-uploads", "main-shop-api-uploads"}
    assert web["volumeAttachments"]["main-shop-web-uploads"]["mountPath"] == "/uploads"
    assert api["volumeAttachments"]["main-shop-api-uploads"]["mountPath"] == "/srv/uploads"
    commands = {s["deploy"]["cronSchedule"]: s["deploy"]["startCommand"] for s in crons.values()}
    assert "http://web.railway.internal:8080/tasks/expire" in commands["*/10 * * * *"]
    assert "http://api.railway.internal:9090/nightly?full=1" in commands["0 3 * * *"]
    assert all(s["deploy"]["restartPolicyType"] == "NEVER" for s in crons.values())


def test_committed_values_come_through_exactly_and_secrets_never() -> None:
    source = hostile_source(include_spec_values=True)
    text = render("railway", source).files[".railway/railway.py"]
    assert not any(v in text for v in SECRETS.values())
    web = nodes(railway_graph(text, "railway.py"), "service")["web"]
    for name, value in source.app.services["web"].env.items():
        if name in SECRETS:
            assert web["variables"][name] == {"type": "sharedReference", "name": name}
        else:
            assert web["variables"][name] == {"type": "literal", "value": value}, name


def test_the_example_app_and_a_missing_variable() -> None:
    text = render("railway", source_from_dir(DEMO)).files[".railway/railway.py"]
    assert set(nodes(railway_graph(text, "railway.py"), "service")) >= {"web"}
    with pytest.raises(SystemExit, match="set RAILWAY_GITHUB_REPO"):
        railway_graph(text, "railway.py", environ={})
