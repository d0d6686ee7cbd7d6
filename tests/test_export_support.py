"""Shared inputs of the export tests: the demo app, a hostile spec, planted secrets.

The hostile spec puts quotes, newlines, `$`, backslashes, YAML syntax and unicode
(including characters YAML reads as line breaks) into env values, commands and crontab
lines, and uses time zones, @every, @reboot and day-field ORs, so every renderer has to
escape and warn. The planted secrets are unique per run; no output may contain them.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from exporters import FORMATS, ExportResult, ExportSource, render, source_from_desired
from reconciler.core.crontab import parse_crontab
from reconciler.core.desired import RefSource, desired_environment
from reconciler.core.model import Ref
from reconciler.core.settings import RepoSettings
from reconciler.core.spec import parse_app_spec

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
MARK = uuid.uuid4().hex  # unique to this run: never in any output
SECRETS = {
    "DB_PASSWORD": f"pw-{MARK}-\"quoted\" 'single' $HOME\nnext line",
    "API_TOKEN": f"tok{MARK}",
    "QUOTES": f"override-{MARK}",  # the repo's env wins over a spec value of that name
}

HOSTILE_SPEC = r"""
name: hostile
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", "echo \"it's $HOME\" && printf 'a\\nb' ; httpd -f -p 8080 # x"]
    env:
      QUOTES: "it's \"quoted\" and 'single'"
      NEWLINES: "line1\nline2\n  indented: yes\n- item\n"
      DOLLARS: "${HOME} $$ $(whoami) `id` ${UNDEFINED:?boom}"
      UNICODE: "h\u00e9llo \u2028 line-sep \x85 nel \U0001F600 \t tab \\ backslash"
      YAMLISH: "key: value # not a comment"
      SPEC_ONLY: "committed value"
    ports: [8080]
    volumes: {data.v1: /data}
    healthcheck: {command: "test -f /tmp/ok || exit 1", interval: 1.5s}
    resources: {memory: 128m, cpus: 0.5}
    user: "1000:1000"
    working_dir: "/srv/app dir"
  worker:
    build: {context: ., dockerfile: Dockerfile, args: {TOKEN_ARG: "x\"y$z"}}
    env: {QUOTES: "a different value"}
    volumes: {data.v1: /shared}
cron: {service: web, timezone: Asia/Kolkata, timeout: 90s, retries: 2, concurrency: replace}
"""

HOSTILE_CRONTAB = r"""# hostile crontab
MSG='he said "hi" to $HOME ✓'
0 9 * * 1-5 echo "daily: it's $MSG" > /tmp/out; printf '\%s\n' done
*/15 * * * * curl -fsS http://localhost:8080/tasks/run?x=1
CRON_TZ=Europe/Paris
30 2 1,15 * MON echo "paris \\ backslash" `date`
CRON_TZ=UTC
@every 5m cat % stdin line 1%line 2 with "quotes" and 'single'
@every 45s echo too fast
@reboot echo booted
0 12 */2 * 1 echo and-days
30 1 * * 7 echo sunday ünïcödé
@daily wget -q -O- http://web:8080/nightly
"""


MULTI_SPEC = r"""
name: shop
services:
  web:
    build: {context: app, dockerfile: Dockerfile, args: {VERSION: "1"}}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    env: {DATABASE_URL: "postgres://db/shop", REPORT_DIR: /reports}
    ports: [8080]
    volumes: {uploads: /uploads}
    healthcheck: {http: /healthz, port: 8080, interval: 5s, start_period: 20s}
    resources: {memory: 256m, cpus: 0.5}
  api:
    image: busybox:1.36
    command: ["httpd", "-f", "-p", "9090"]
    ports: [9090]
    volumes: {uploads: /srv/uploads}
    resources: {memory: 1g, cpus: 1.5}
  worker:
    image: busybox:1.36
    command: ["sh", "-c", "while sleep 60; do :; done"]
    env: {QUEUE: jobs}
    resources: {memory: 512m, cpus: 0.25}
cron: {service: web, timezone: Europe/Paris, timeout: 10m}
"""

MULTI_CRONTAB = r"""# several services, jobs that call them, two zones
REPORT_DIR=/reports
*/10 * * * * curl -fsS http://localhost:8080/tasks/expire
0 3 * * * wget -q -O- 'http://api:9090/nightly?full=1'
30 2 1,15 * MON echo "$REPORT_DIR" > /tmp/report-dir
CRON_TZ=UTC
@every 90s echo tick
15 4 * * 0 test -d "$REPORT_DIR"
"""


def multi_source(include_spec_values: bool = False) -> ExportSource:
    """Three services (one built, two sharing a volume), jobs calling the app."""
    app = parse_app_spec(MULTI_SPEC, ".hoody/app.yaml", "shop")
    tab = parse_crontab(MULTI_CRONTAB, ".hoody/crontab", app.cron.timezone)
    secrets = {"API_TOKEN": SECRETS["API_TOKEN"]}
    return ExportSource("main-shop", app, tab, secrets, include_spec_values, MULTI_CRONTAB)


def hostile_source(include_spec_values: bool = False) -> ExportSource:
    app = parse_app_spec(HOSTILE_SPEC, ".hoody/app.yaml", "hostile")
    tab = parse_crontab(HOSTILE_CRONTAB, ".hoody/crontab", app.cron.timezone)
    return ExportSource("main-hostile", app, tab, SECRETS, include_spec_values, HOSTILE_CRONTAB)


def desired_source(spec: str, crontab: str | None, kind: str = "branch") -> ExportSource:
    """Through the server's own path: the desired environment carries the secrets in
    its resolved env, and `source_from_desired` must not let them out."""
    app = parse_app_spec(spec, ".hoody/app.yaml", "app")
    repo = RepoSettings(name="shop", url="/nowhere", env=SECRETS)
    if kind == "pr":
        ref = Ref("refs/pull/7/head", "c" * 40, "pr", 7)
    else:
        ref = Ref("refs/heads/main", "c" * 40)
    contexts = {name: "t" * 40 for name, svc in app.services.items() if svc.build}
    env = desired_environment(repo, RefSource(ref, app, crontab=crontab, contexts=contexts), b"k")
    assert any(MARK in v for s in env.services.values() for v in s.env.values())
    return source_from_desired(env, repo.env)


def all_outputs(source: ExportSource) -> dict[str, ExportResult]:
    return {fmt: render(fmt, source) for fmt in FORMATS}


def leaks(results: dict[str, ExportResult]) -> list[str]:
    """Every (format, file) whose text or warnings hold a planted secret, in any form."""
    found = []
    for fmt, result in results.items():
        texts = {**result.files, "<warnings>": "\n".join(result.warnings)}
        for path, text in texts.items():
            if MARK in text or any(v in text for v in SECRETS.values()):
                found.append(f"{fmt}:{path}")
    return found


@pytest.fixture(scope="module")
def hostile_results() -> dict[str, ExportResult]:
    return all_outputs(hostile_source())
