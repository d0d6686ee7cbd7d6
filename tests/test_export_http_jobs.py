"""HTTP jobs (`CronEntry.request`) in every format: valid against the platforms' own
schemas and tools, mapped to the native HTTP scheduler where there is one (Cloud
Scheduler HTTP targets, Vercel crons), a curl client image elsewhere, what cannot be
carried warned, and `${VAR}` in headers and body a placeholder of the environment's
variables, never a value (a fork's export names none of the repository's)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from exporters import FORMATS, render
from exporters.httpjobs import CLIENT_IMAGE

from .test_export_http_jobs_support import DIGEST_BODY, http_entry, http_source
from .test_export_schemas import CHECKS, NOT_SCHEMA_FILES, parse
from .test_export_support import MARK, SECRETS

DIGEST = "scheduler/digest-923a64"


@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_http_job_exports_are_valid_against_the_platform_schema(fmt: str, values: bool) -> None:
    files = render(fmt, http_source(include_spec_values=values)).files
    checked = 0
    for path, text in files.items():
        if path in NOT_SCHEMA_FILES or path.endswith(".body"):
            continue
        checks = [check for match, check in CHECKS[fmt] if match(path)]
        assert checks, f"{fmt}/{path} has no schema check"
        for check in checks:
            check(parse(path, text), f"{fmt}/{path}")
        checked += 1
    assert checked


@pytest.mark.parametrize("version", ["1.27", "1.37"])
def test_kubernetes_http_cronjobs_pass_kubernetes_validate(version: str) -> None:
    files = render("kubernetes", http_source()).files
    cronjobs = [p for p in files if p.startswith("cronjob-")]
    assert len(cronjobs) == 4
    for path in cronjobs:
        kubernetes_validate.validate(yaml.safe_load(files[path]), version, strict=True)


def test_cloud_scheduler_calls_the_run_service_with_the_retry_policy() -> None:
    result = render("cloudrun", http_source())
    files = result.files
    job = json.loads(files[f"{DIGEST}.json"])
    target = job["httpTarget"]
    assert target["uri"] == "${CLOUD_RUN_URL}/tasks/digest?day=1"
    assert target["httpMethod"] == "POST"
    assert target["headers"]["Authorization"] == "Bearer ${API_TOKEN}"
    assert target["headers"]["X-Report"] == "${REPORT_DIR} costs $5 ${NOT_SET}"
    assert "\\u00245" in files[f"{DIGEST}.json"]  # a literal $: envsubst cannot see it
    assert job["timeZone"] == "Europe/Paris" and job["schedule"] == "*/10 * * * *"
    assert job["attemptDeadline"] == "20s"
    # hoody: retries 3, first after 2 s, doubled each time: 2, 4, 8
    assert job["retryConfig"] == {
        "retryCount": 3,
        "minBackoffDuration": "2s",
        "maxBackoffDuration": "8s",
        "maxDoublings": 2,
    }
    assert "oidcToken" not in target  # the request sends its own Authorization
    expire = json.loads(files["scheduler/expire-3fc252.json"])["httpTarget"]
    assert expire["oidcToken"]["audience"] == "${CLOUD_RUN_URL}"
    assert expire["httpMethod"] == "GET" and "body" not in expire
    # no Cloud Run Job for an HTTP job; the command job keeps its own
    assert [p for p in files if p.startswith("jobs/")] == ["jobs/curl-731897.yaml"]
    text = "\n".join(result.warnings)
    assert "expect 200, 202 not carried" in text
    assert "DELETE http://api:9090/cache: not exported" in text
    assert "grant it roles/run.invoker" in text
    assert "scheduler/cache" not in " ".join(files)


def test_a_body_without_variables_is_base64_in_the_job() -> None:
    body = '{"full": true, "cost": "$5"}'
    entry = http_entry(2, "0 5 * * *", "PUT", "http://web:8080/tasks/full", body=body)
    files = render("cloudrun", http_source(entries=[entry])).files
    target = json.loads(files["scheduler/full-" + entry.id[:6] + ".json"])["httpTarget"]
    assert base64.b64decode(target["body"]).decode() == body
    assert not any(p.endswith(".body") for p in files)


@pytest.mark.skipif(not (shutil.which("jq") and shutil.which("envsubst")), reason="jq, envsubst")
def test_a_body_with_variables_is_encoded_by_the_command_the_warning_gives(
    tmp_path: Path,
) -> None:
    result = render("cloudrun", http_source())
    for path, text in result.files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (warning,) = [w for w in result.warnings if "jq --arg" in w]
    command = warning[warning.index("jq --arg") :]
    env = {"PATH": os.environ["PATH"], "API_TOKEN": "tok", "REPORT_DIR": "/reports"}
    out = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    body = base64.b64decode(json.loads(out.stdout)["httpTarget"]["body"]).decode()
    assert body == DIGEST_BODY.replace("${REPORT_DIR}", "/reports").replace("${API_TOKEN}", "tok")


def test_vercel_carries_get_paths_and_says_what_it_cannot() -> None:
    result = render("vercel", http_source())
    crons = json.loads(result.files["vercel.json"])["crons"]
    assert {"path": "/tasks/expire", "schedule": "0 3 * * *"} in crons
    assert not any(c["path"].startswith(("/tasks/digest", "/cache")) for c in crons)
    text = "\n".join(result.warnings)
    assert "a Vercel cron is a GET request, and this job is a POST" in text
    assert "this job is a DELETE" in text
    entry = http_entry(
        2,
        "0 5 * * *",
        "GET",
        "http://web:8080/tasks/warm",
        headers=(("X-Key", "${API_TOKEN}"),),
        retries=2,
        expect=(204,),
    )
    result = render("vercel", http_source(entries=[entry]))
    assert {"path": "/tasks/warm", "schedule": "0 5 * * *"} in json.loads(
        result.files["vercel.json"]
    )["crons"]
    (lost,) = [w for w in result.warnings if "sends a GET to the path and nothing else" in w]
    assert "headers, retries, expect not carried" in lost and "CRON_SECRET" in lost


def _client_scripts(files: dict[str, str]) -> list[str]:
    """Every text of the export that runs the client image."""
    return [t for t in files.values() if CLIENT_IMAGE in t]


@pytest.mark.parametrize("fmt", ["kubernetes", "ecs", "render", "railway", "compose"])
def test_the_client_image_is_stated_in_the_warning(fmt: str) -> None:
    result = render(fmt, http_source())
    assert _client_scripts(result.files), fmt
    (note,) = [w for w in result.warnings if w.startswith("HTTP jobs run ")]
    assert CLIENT_IMAGE in note and "retries" in note
    if fmt == "ecs":
        assert "not as EventBridge API destinations" in note
    assert any("${NOT_SET} in the request is not a variable" in w for w in result.warnings)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_no_secret_value_in_any_http_job_export(fmt: str) -> None:
    for values in (False, True):
        result = render(fmt, http_source(include_spec_values=values))
        texts = [*result.files.values(), *result.warnings]
        assert not any(MARK in t or SECRETS["API_TOKEN"] in t for t in texts), fmt


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_forks_http_jobs_name_none_of_the_repos_env(fmt: str) -> None:
    """A fork's export has no repo env: `${API_TOKEN}` in its request stays literal text,
    so no envsubst or platform variable can put the repository's token in it."""
    result = render(fmt, http_source(secrets={}))
    assert "API_TOKEN" not in result.files[".env.example"], fmt
    if fmt in ("vercel",):
        return
    assert any("${API_TOKEN} in the request is not a variable" in w for w in result.warnings)
    for path, text in result.files.items():
        if path == "HOODY-EXPORT-WARNINGS.txt":
            continue
        assert "ctx.shared['API_TOKEN']" not in text and 'key: "API_TOKEN"' not in text
        assert '"name": "API_TOKEN"' not in text and '"API_TOKEN": ' not in text, path


def test_every_request_part_reaches_the_scripts_of_each_client_platform() -> None:
    for fmt in ("kubernetes", "ecs", "render", "railway", "compose"):
        text = "\n".join(render(fmt, http_source()).files.values())
        for part in ("-X POST", "--max-time 20", "--data-raw", "200|202", "2 4 8 -"):
            assert part in text, (fmt, part)


def test_job_names_come_from_the_request_path() -> None:
    files = render("kubernetes", http_source()).files
    assert {p for p in files if p.startswith("cronjob-")} == {
        "cronjob-curl-731897.yaml",
        "cronjob-digest-923a64.yaml",
        "cronjob-expire-3fc252.yaml",
        "cronjob-cache-3c504b.yaml",
    }
