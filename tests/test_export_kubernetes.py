"""Kubernetes export: every manifest passes kubernetes-validate, strict (no unknown
field), for the newest Kubernetes version it knows; CronJobs carry the schedule."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from exporters import render, source_from_dir
from exporters.base import ExportSource
from tests.test_export_envsubst import kubelet_expand
from tests.test_export_support import DEMO, hostile_source

VERSION = latest_version()


def manifests(source: ExportSource) -> dict[str, dict]:
    files = render("kubernetes", source).files
    docs = {}
    for path, text in files.items():
        if path.endswith(".yaml"):
            (doc,) = list(yaml.safe_load_all(text))
            docs[path] = doc
    return docs


@pytest.mark.parametrize("values", [False, True])
def test_every_manifest_is_valid_kubernetes(values: bool) -> None:
    for source in (source_from_dir(DEMO, values), hostile_source(values)):
        docs = manifests(source)
        assert docs
        for path, doc in docs.items():
            try:
                kubernetes_validate.validate(doc, VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path}: {exc.message} at {list(exc.path)}")


def test_cronjobs_carry_schedule_zone_policy_and_deadline() -> None:
    source = hostile_source()
    docs = manifests(source)
    jobs = {
        doc["spec"]["schedule"]: doc["spec"] for doc in docs.values() if doc["kind"] == "CronJob"
    }
    daily = jobs["0 9 * * 1-5"]
    assert daily["timeZone"] == "Asia/Kolkata"
    assert daily["concurrencyPolicy"] == "Replace"
    assert daily["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 90
    assert daily["jobTemplate"]["spec"]["backoffLimit"] == 2
    (container,) = daily["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert "daily: it's $MSG" in kubelet_expand(container["command"][2], {})
    assert jobs["30 2 1,15 * MON"]["timeZone"] == "Europe/Paris"
    assert jobs["*/5 * * * *"]["timeZone"] == "UTC"  # @every 5m, whole multiples since 1970
    assert jobs["30 1 * * 0"]["timeZone"] == "UTC"  # Sunday written 0 for robfig/cron
    assert not any("45s" in s or "@" in s for s in jobs)


def test_hostile_env_values_are_kept_exactly() -> None:
    source = hostile_source(include_spec_values=True)
    deployment = manifests(source)["deployment-web.yaml"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    values = {e["name"]: kubelet_expand(e.get("value", ""), {}) for e in container["env"]}
    spec_env = source.app.services["web"].env
    for name in ("NEWLINES", "DOLLARS", "UNICODE", "YAMLISH"):
        assert values[name] == spec_env[name]
    assert container["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
