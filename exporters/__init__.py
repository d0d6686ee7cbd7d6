"""Exporters: take one environment (its app spec, its crontab, its name) to the files that
another platform runs — Compose, Kubernetes, ECS, Cloud Run, Render, Railway, Vercel —
schedule included, with no secret inside.

`render(fmt, source)` is pure: an `ExportSource` in, an `ExportResult` out (relative path
-> file text, plus warnings). Every result holds `.env.example` (the variables behind the
`${NAME}` placeholders) and, when anything could not be expressed on the platform,
`HOODY-EXPORT-WARNINGS.txt` with the same warnings the result returns. A renderer's YAML,
JSON and Python files are parsed back before they are returned, so a bug in escaping
fails loudly here instead of in someone's deployment.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from reconciler.core.crontab import parse_crontab
from reconciler.core.model import CRONTAB_FILE, SPEC_FILE, DesiredEnvironment, Ref
from reconciler.core.naming import env_name, slugify, valid_app_name
from reconciler.core.spec import parse_app_spec

from . import cloudrun, compose, ecs, kubernetes, railway, render_com, vercel
from .base import (
    ENV_EXAMPLE,
    WARNINGS_FILE,
    Collector,
    ExportError,
    ExportResult,
    ExportSource,
    env_example,
    warnings_file,
)

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportResult",
    "ExportSource",
    "Format",
    "render",
    "source_from_desired",
    "source_from_dir",
]


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    renderer: Callable[[ExportSource, Collector], dict[str, str]]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("compose", "docker-compose.yml; cron as ofelia job-exec labels", compose.render),
        Format("kubernetes", "Deployments, Services, Ingress, PVCs, CronJobs", kubernetes.render),
        Format("ecs", "ECS task definitions and EventBridge Scheduler schedules", ecs.render),
        Format(
            "cloudrun", "Knative service.yaml, Cloud Run Jobs, Cloud Scheduler", cloudrun.render
        ),
        Format("render", "render.yaml Blueprint with cron services", render_com.render),
        Format(
            "railway",
            ".railway/railway.py (Infrastructure as Code): services, volumes, crons",
            railway.render,
        ),
        Format("vercel", "vercel.json crons for jobs that call the app over HTTP", vercel.render),
    )
}


def render(fmt: str, source: ExportSource) -> ExportResult:
    """The files of `source` in format `fmt`; ExportError for an unknown format."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Collector()
    for note in source.notes:
        out.warn(note)
    files = spec.renderer(source, out)
    files[ENV_EXAMPLE] = env_example(source, out, fmt)
    if out.warnings:
        files[WARNINGS_FILE] = warnings_file(source, out, fmt)
    for path, text in files.items():
        _check_parses(path, text)
    return ExportResult(dict(sorted(files.items())), list(out.warnings))


def _check_parses(path: str, text: str) -> None:
    try:
        if path.endswith(".json"):
            json.loads(text)
        elif path.endswith((".yaml", ".yml")):
            list(yaml.safe_load_all(text))
        elif path.endswith(".py"):
            ast.parse(text, path)
    except (ValueError, SyntaxError, yaml.YAMLError) as exc:  # a renderer bug, not the input
        raise ExportError(f"internal error: {path} does not parse: {exc}") from exc


def source_from_dir(path: Path, include_spec_values: bool = False) -> ExportSource:
    """The working tree at `path` (its `.hoody/app.yaml` and `.hoody/crontab`), no server.

    The environment is named as the server would name it: `<branch slug>-<app>` when
    `path/.git/HEAD` names a branch, else `<directory slug>-<app>`. There are no repo
    secrets without a server, so `secret_env` is empty.
    """
    root = Path(path)
    spec_path = root / SPEC_FILE
    if not spec_path.is_file():
        raise ExportError(f"{SPEC_FILE}: not found in {root}")
    dir_slug = slugify(root.resolve().name)
    default = dir_slug if valid_app_name(dir_slug) else "app"
    app = parse_app_spec(spec_path.read_text(encoding="utf-8"), SPEC_FILE, default_name=default)
    crontab_text = _read(root / CRONTAB_FILE)
    crontab = (
        parse_crontab(crontab_text, CRONTAB_FILE, app.cron.timezone)
        if crontab_text is not None
        else None
    )
    branch = _branch(root)
    if branch is not None:
        name = env_name(Ref(f"refs/heads/{branch}", ""), app.name)
    else:
        name = f"{dir_slug or 'local'}-{app.name}"
    return ExportSource(name, app, crontab, {}, include_spec_values, crontab_text)


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _branch(root: Path) -> str | None:
    head = _read(root / ".git" / "HEAD")
    if head is None or not head.startswith("ref: refs/heads/"):
        return None
    return head.strip()[len("ref: refs/heads/") :] or None


def source_from_desired(
    env: DesiredEnvironment, repo_env: Mapping[str, str], include_spec_values: bool = False
) -> ExportSource:
    """A server environment: its spec (with the preview env merged in for a pull
    request, as the server runs it) and the names of the repo's env."""
    app = env.app
    if env.ref.kind == "pr" and app.preview.env:
        services = {
            name: replace(svc, env={**svc.env, **app.preview.env})
            for name, svc in app.services.items()
        }
        app = replace(app, services=services)
    crontab = (
        parse_crontab(env.crontab, CRONTAB_FILE, app.cron.timezone)
        if env.crontab is not None
        else None
    )
    # A fork's pull request runs without the repo's env; its export must not name it either.
    secrets = {k: v for k, v in repo_env.items() if k in env.secret_keys}
    return ExportSource(env.name, app, crontab, secrets, include_spec_values, env.crontab)
