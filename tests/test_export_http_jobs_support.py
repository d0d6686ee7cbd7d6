"""Inputs of the HTTP-job export tests: crontab entries whose job is a request
(`CronEntry.request`), built by `http_entry` only, so that the tests switch to parsing
the crontab's `<schedule> | METHOD URL key=value ...` lines in one place once it exists."""

from __future__ import annotations

import hashlib
from types import MappingProxyType

from exporters import ExportSource
from reconciler.core.crontab import CronEntry, Crontab, parse_crontab
from reconciler.core.httpjob import HttpRequest
from reconciler.core.spec import parse_app_spec

from .test_export_support import MULTI_SPEC, SECRETS

DIGEST_BODY = '{"dir": "${REPORT_DIR}", "price": "$5", "token": "${API_TOKEN}"}'


def http_entry(
    line: int,
    schedule: str,
    method: str,
    url: str,
    timezone: str = "UTC",
    **request: object,
) -> CronEntry:
    """One HTTP job (five-field `schedule`) as the crontab parser would give it."""
    req = HttpRequest(method, url, **request)  # type: ignore[arg-type]
    text = f"{method} {url}"
    digest = hashlib.sha256(f"{schedule}|{text}|{request}|{timezone}".encode()).hexdigest()
    return CronEntry(
        id=digest,
        line=line,
        schedule=schedule,
        raw_schedule=schedule,
        kind="cron",
        command=text,
        stdin=None,
        env=MappingProxyType({}),
        timezone=timezone,
        request=req,
    )


def http_entries() -> list[CronEntry]:
    return [
        http_entry(
            2,
            "*/10 * * * *",
            "POST",
            "http://web:8080/tasks/digest?day=1",
            "Europe/Paris",
            headers=(
                ("Authorization", "Bearer ${API_TOKEN}"),
                ("Content-Type", "application/json"),
                ("X-Report", "${REPORT_DIR} costs $5 ${NOT_SET}"),
            ),
            body=DIGEST_BODY,
            timeout=20.0,
            expect=(200, 202),
            retries=3,
            retry_backoff=2.0,
        ),
        http_entry(3, "0 3 * * *", "GET", "http://web:8080/tasks/expire", "Europe/Paris"),
        http_entry(
            4, "15 4 * * 0", "DELETE", "http://api:9090/cache", retries=1, retry_backoff=0.5
        ),
    ]


# a command job next to them, calling the app: it keeps working as before
COMMANDS = "*/15 * * * * curl -fsS http://localhost:8080/tasks/run\n"


def http_source(
    include_spec_values: bool = False,
    secrets: dict[str, str] | None = None,
    entries: list[CronEntry] | None = None,
) -> ExportSource:
    """The multi-service spec with HTTP jobs (and one command job)."""
    app = parse_app_spec(MULTI_SPEC, ".hoody/app.yaml", "shop")
    commands = parse_crontab(COMMANDS, ".hoody/crontab", app.cron.timezone)
    tab = Crontab((*commands.entries, *(entries or http_entries())), ())
    env = {"API_TOKEN": SECRETS["API_TOKEN"]} if secrets is None else secrets
    return ExportSource("main-shop", app, tab, env, include_spec_values, COMMANDS)
