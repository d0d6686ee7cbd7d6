"""The Kubernetes, Cloud Run and ECS exports through the real `envsubst` (GNU gettext), the way
their `.env.example` says to run it and also with no variable list at all: our `${NAME}`
placeholders are filled in, nothing else moves. A branch-written `${AWS_SECRET_ACCESS_KEY}`
or `${DB_PASSWORD}` stays text, job commands keep `$REPORT_DIR`, and on Kubernetes the
kubelet's own `$(NAME)` expansion gives back exactly the commands hoody runs."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from exporters import ExportResult, ExportSource, render
from exporters.base import jobs
from reconciler.core.crontab import parse_crontab
from reconciler.core.spec import parse_app_spec

from .test_export_support import MARK

ENVSUBST = shutil.which("envsubst")
pytestmark = pytest.mark.skipif(
    ENVSUBST is None, reason="envsubst is not installed (apt-get install gettext-base)"
)

SPEC = r"""
name: subst
services:
  web:
    image: "registry.example.com/shop:${AWS_SECRET_ACCESS_KEY}"
    command: ["sh", "-c", "echo $$ $(API_TOKEN) ${DB_PASSWORD} $REPORT_DIR && httpd -f -p 8080"]
    env: {REPORT_DIR: /reports, LITERAL: "${DB_PASSWORD} and $HOME $(API_TOKEN)"}
    ports: [8080]
"""
CRONTAB = r"""REPORT_DIR=/reports
*/5 * * * * echo "$REPORT_DIR" "${DB_PASSWORD}" '$AWS_SECRET_ACCESS_KEY' $(API_TOKEN) $$
0 3 * * * sh -c 'ls ${REPORT_DIR:-/tmp}' % input with $HOME
"""
AWS = f"aws-{MARK}"
REPO_ENV = {"DB_PASSWORD": f"pw-{MARK}", "API_TOKEN": f"tok-{MARK}"}
PLANTED = {*REPO_ENV.values(), AWS}


def source(values: bool) -> ExportSource:
    app = parse_app_spec(SPEC, ".hoody/app.yaml", "subst")
    tab = parse_crontab(CRONTAB, ".hoody/crontab", "UTC")
    return ExportSource("main-subst", app, tab, REPO_ENV, values, CRONTAB)


def envsubst(text: str, names: str | None) -> str:
    env = {"PATH": "/usr/bin:/bin", **REPO_ENV, "AWS_SECRET_ACCESS_KEY": AWS}
    env |= {"REPORT_DIR": "WRONG", "HOME": "WRONG", "IMAGE_WEB": "img", "LITERAL": "WRONG"}
    env |= {"GCP_PROJECT": "proj", "GCP_REGION": "europe-west1", "SCHEDULER_SERVICE_ACCOUNT": "a"}
    argv = [str(ENVSUBST), *([names] if names is not None else [])]
    run = subprocess.run(argv, input=text, env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return run.stdout


def listed_names(result: ExportResult) -> str:
    """The SHELL-FORMAT argument of the command `.env.example` prints."""
    match = re.search(r"envsubst ('[^']*')", result.files[".env.example"])
    assert match, result.files[".env.example"]
    (names,) = shlex.split(match[1])
    return names


def substituted(fmt: str, values: bool, listed: bool) -> tuple[ExportResult, dict[str, Any]]:
    result = render(fmt, source(values))
    names = listed_names(result) if listed else None
    docs: dict[str, Any] = {}
    for path, text in result.files.items():
        if path.endswith((".yaml", ".json")):
            after = envsubst(text, names)
            docs[path] = json.loads(after) if path.endswith(".json") else yaml.safe_load(after)
    return result, docs


def leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, (*path, i))
    elif isinstance(node, str):
        yield path, node


def kubelet_expand(text: str, defined: dict[str, str]) -> str:
    """The kubelet's expansion of commands, args and env values (third_party/forked/
    golang/expansion): `$$` is `$`, `$(NAME)` a defined variable's value, else as is."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "(" and (end := text.find(")", i + 2)) != -1:
                name = text[i + 2 : end]
                out.append(defined.get(name, f"$({name})"))
                i = end + 1
                continue
            out.append("$" if nxt == "$" else "$" + nxt)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("listed", [True, False])
@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("fmt", ["kubernetes", "cloudrun", "ecs"])
def test_envsubst_fills_only_our_placeholders(fmt: str, values: bool, listed: bool) -> None:
    result, docs = substituted(fmt, values, listed)
    assert "${AWS_SECRET_ACCESS_KEY}" not in listed_names(result)
    for path, doc in docs.items():
        for where, text in leaves(doc):
            assert AWS not in text, (path, where)
            if any(v in text for v in REPO_ENV.values()):
                # only where the export put a placeholder for it: a Secret, an env value
                assert text in REPO_ENV.values(), (path, where, text)
                assert "stringData" in where or where[-1] == "value", (path, where)
    images = {t for _, d in docs.items() for w, t in leaves(d) if w and w[-1] == "image"}
    assert images == {"registry.example.com/shop:${AWS_SECRET_ACCESS_KEY}"}


@pytest.mark.parametrize("listed", [True, False])
def test_kubernetes_commands_survive_envsubst_and_the_kubelet(listed: bool) -> None:
    src = source(True)
    _, docs = substituted("kubernetes", True, listed)
    web = docs["deployment-web.yaml"]["spec"]["template"]["spec"]["containers"][0]
    defined = {"API_TOKEN": "EXPANDED", "DB_PASSWORD": "EXPANDED", "REPORT_DIR": "EXPANDED"}
    args = [kubelet_expand(a, defined) for a in web["args"]]
    assert args == list(src.app.services["web"].command or ())
    env = {e["name"]: kubelet_expand(e["value"], defined) for e in web["env"] if "value" in e}
    assert env["LITERAL"] == "${DB_PASSWORD} and $HOME $(API_TOKEN)"
    scripts = {j.name: j.script for j in jobs(src)}
    for path, doc in docs.items():
        if doc["kind"] == "CronJob":
            (job,) = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            name = path.removeprefix("cronjob-").removesuffix(".yaml")
            assert kubelet_expand(job["command"][2], defined) == scripts[name]
            assert "$REPORT_DIR" in scripts[name] or "${REPORT_DIR" in scripts[name]


@pytest.mark.parametrize("listed", [True, False])
def test_cloudrun_job_commands_survive_envsubst(listed: bool) -> None:
    src = source(False)
    _, docs = substituted("cloudrun", False, listed)
    scripts = {j.name: j.script for j in jobs(src)}
    labels = {j.name: j.label for j in jobs(src)}
    for path, doc in docs.items():
        if path.startswith("jobs/"):
            (c,) = doc["spec"]["template"]["spec"]["template"]["spec"]["containers"]
            name = path.removeprefix("jobs/").removesuffix(".yaml")
            assert c["command"][2] == scripts[name]
        if path.startswith("scheduler/"):
            assert doc["name"].startswith("projects/proj/locations/europe-west1/jobs/")
            name = path.removeprefix("scheduler/").removesuffix(".json")
            assert doc["description"] == labels[name][:500]
    service = docs["service.yaml"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in service["env"]}
    assert env["DB_PASSWORD"] == REPO_ENV["DB_PASSWORD"]  # the placeholder, filled in
    assert env["REPORT_DIR"] == "WRONG"  # a placeholder too: the deployer's value
