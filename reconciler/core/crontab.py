"""The `.hoody/crontab` language: parse a branch's crontab into entries the service runs.

Every branch carries a crontab and the service runs it in-process (no cron daemon in the
containers), so this module pins down what a crontab *means*: cronie's crontab(5) rules
for fields, macros, environment lines, `%` and day matching, plus `@every <duration>`.
Each entry gets an `id` derived from what it does, not where it is, so that moving lines
keeps run history and state attached to the right job. All problems of a file are
reported at once (`SpecErrors`), each as `.hoody/crontab:<line>: <what is wrong>`.

Pure: no I/O (beyond `zoneinfo` zone data), no clock, no threads. The schedule maths
lives in `reconciler.core.cronexpr`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.core.cronexpr import FIELD_NAMES, next_every, next_fire_at, parse_expr
from reconciler.core.cronlex import (
    CronKind,
    env_value,
    lines,
    parse_schedule,
    pick_random,
    split_percent,
    words,
)
from reconciler.core.cronwords import (
    describe_duration,
    explain_expr,
    format_duration,
)
from reconciler.core.errors import ExprError, RequestProblem, SpecError, SpecErrors
from reconciler.core.httpjob import (
    HttpRequest,
    JobKind,
    describe,
    is_request_line,
    parse_request_line,
)
from reconciler.core.model import CRONTAB_FILE

_ENV_LINE = re.compile(
    r"(?P<q>[\"']?)(?P<name>[^ \t=\"']+)(?P=q)[ \t]*=[ \t]*(?P<value>.*)", re.ASCII
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IGNORED = {
    "MAILTO": "is ignored; notifications are configured on the server",
    "MAILFROM": "is ignored; notifications are configured on the server",
    "RANDOM_DELAY": "is ignored; use cron.jitter in .hoody/app.yaml",
}


@dataclass(frozen=True)
class CronEntry:
    """One job line, with everything in effect at that line resolved."""

    id: str  # sha256 of what the job does (schedule, command, stdin, env, zone, shell)
    line: int  # 1-based line in the file
    schedule: str  # normalized: "*/5 * * * *", "@every 30s", "@reboot"; macros expanded
    raw_schedule: str  # as written: "@daily", "*/5 * * * *"
    kind: CronKind
    command: str  # text before the first unescaped %, with \% turned into %
    stdin: str | None  # text after it, other unescaped % turned into newlines
    env: Mapping[str, str] = field(hash=False)  # NAME=value lines above (not SHELL/CRON_TZ)
    timezone: str = "UTC"
    shell: str = "/bin/sh"
    every: float | None = None  # seconds, for @every
    run_at: datetime | None = None  # for "once": a managed one-shot job (not in crontabs)
    request: HttpRequest | None = None  # an HTTP job: `command` is then its text as written

    @property
    def job_kind(self) -> JobKind:
        """What a firing does: run `command` in the container, or make `request`."""
        return "http" if self.request is not None else "command"


@dataclass(frozen=True)
class Crontab:
    entries: tuple[CronEntry, ...]
    warnings: tuple[str, ...]  # "<file>:<line>: <message>"

    def by_id(self) -> dict[str, CronEntry]:
        return {e.id: e for e in self.entries}


def parse_crontab(text: str, file: str = CRONTAB_FILE, default_timezone: str = "UTC") -> Crontab:
    """Parse a crontab; raise `SpecErrors` listing every bad line, sorted by line."""
    errors: list[SpecError] = []
    warnings: list[str] = []
    entries: list[CronEntry] = []
    seen: dict[str, tuple[int, int]] = {}  # id -> (first line, copies)
    bad_default = _zone_error(default_timezone)
    if bad_default:
        errors.append(SpecError(file, None, "cron.timezone", bad_default))
        default_timezone = "UTC"
    env: dict[str, str] = {}
    zone, shell = default_timezone, "/bin/sh"

    def error(line: int, fld: str | None, message: str) -> None:
        errors.append(SpecError(file, line, fld, message))

    for number, raw in enumerate(lines(text.removeprefix("\ufeff")), start=1):
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        assignment = _ENV_LINE.fullmatch(line)
        if assignment:
            name, value = assignment["name"], env_value(assignment["value"])
            if not _ENV_NAME.fullmatch(name):
                error(number, None, f"{name!r} is not a valid environment variable name")
            elif value is None:
                error(number, name, "unbalanced quotes around the value")
            elif name == "CRON_TZ":
                problem = _zone_error(value) if value else None
                if problem:
                    error(number, name, problem)
                else:
                    zone = value or default_timezone
            elif name == "SHELL":
                if value:
                    shell = value
                else:
                    error(number, name, "must not be empty")
            elif name in _IGNORED:
                warnings.append(f"{file}:{number}: {name} {_IGNORED[name]}")
            else:
                if name == "TZ":
                    warnings.append(
                        f"{file}:{number}: TZ only sets the commands' environment; "
                        "write CRON_TZ to schedule in a time zone"
                    )
                env[name] = value
            continue
        problems: list[tuple[str | None, str]] = []
        parsed = parse_schedule(line, problems)
        for fld, message in problems:
            error(number, fld, message)
        if parsed is None:
            continue
        raw_schedule, schedule, kind, every, rest = parsed
        request: HttpRequest | None = None
        if is_request_line(rest):  # an HTTP job: `%` is literal (URLs percent-encode)
            command, stdin = rest.rstrip(" \t"), None
            try:
                request = parse_request_line(command)
            except RequestProblem as exc:
                error(number, exc.field, str(exc))
                continue
        else:
            command, stdin = split_percent(rest)
        if stdin is not None:
            warnings.append(
                f"{file}:{number}: unescaped % ends the command; the rest becomes stdin "
                "(write \\% for a literal %)"
            )
        if not command.strip():
            error(number, "command", "empty command before the %")
            continue
        ident = _identity(schedule, command, stdin, env, zone, shell)
        if "~" in schedule:  # random ranges: picked from the identity, so stable
            try:
                schedule = parse_expr(pick_random(schedule, ident)[0]).text
            except ExprError as exc:
                for fld, message in exc.problems:
                    error(number, fld, message)
                continue
        if ident in seen:  # identical lines: both run, as in cron; keep ids unique
            first, count = seen[ident]
            seen[ident] = (first, count + 1)
            warnings.append(f"{file}:{number}: same job as line {first}; both run")
            ident = f"{ident}-{count + 1}"
        else:
            seen[ident] = (number, 1)
        entries.append(
            CronEntry(
                id=ident,
                line=number,
                schedule=schedule,
                raw_schedule=raw_schedule,
                kind=kind,
                command=command,
                stdin=stdin,
                env=MappingProxyType(dict(env)),
                timezone=zone,
                shell=shell,
                every=every,
                request=request,
            )
        )
    if errors:
        raise SpecErrors(sorted(errors, key=lambda e: e.line or 0))
    return Crontab(tuple(entries), tuple(warnings))


def _identity(
    schedule: str, command: str, stdin: str | None, env: Mapping[str, str], zone: str, shell: str
) -> str:
    payload = json.dumps([schedule, command, stdin, sorted(env.items()), zone, shell])
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@lru_cache(maxsize=256)
def _zone_error(name: str) -> str | None:
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
    return None


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    return UTC if name in ("UTC", "Etc/UTC") else ZoneInfo(name)


def next_fire(entry: CronEntry, after: datetime) -> datetime | None:
    """First firing strictly after `after` (aware), as an aware UTC datetime.

    None for @reboot (and if nothing fires within `cronexpr.HORIZON_YEARS`). @every fires
    at whole multiples of its interval since the Unix epoch, so a restart never shifts it.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("after must be a timezone-aware datetime")
    if entry.kind == "reboot":
        return None
    if entry.kind == "once":
        return entry.run_at if entry.run_at is not None and entry.run_at > after else None
    if entry.kind == "every":
        if not entry.every:
            raise ValueError(f"@every entry {entry.id} has no interval")
        return next_every(entry.every, after)
    return next_fire_at(parse_expr(entry.schedule), _zone(entry.timezone), after)


def next_fires(entry: CronEntry, after: datetime, n: int) -> list[datetime]:
    """The next `n` firings strictly after `after` (fewer if the schedule runs out)."""
    fires: list[datetime] = []
    current: datetime | None = after
    while current is not None and len(fires) < n:
        current = next_fire(entry, current)
        if current is not None:
            fires.append(current)
    return fires


def explain(entry: CronEntry) -> str:
    """Human words: "at minute 0 past every 2nd hour, on Monday through Friday (UTC)";
    for an HTTP job, then the request it makes."""
    text = _explain_schedule(entry)
    return f"{text}; {describe(entry.request)}" if entry.request is not None else text


def _explain_schedule(entry: CronEntry) -> str:
    if entry.kind == "reboot":
        return "once, when the environment starts (@reboot)"
    if entry.kind == "once":
        return f"once, at {entry.run_at.isoformat() if entry.run_at else '?'}"
    if entry.kind == "every":
        seconds = entry.every or 0.0
        return (
            f"every {describe_duration(seconds)} (at whole multiples of "
            f"{format_duration(seconds)} since 1970-01-01 00:00 UTC)"
        )
    text = explain_expr(parse_expr(entry.schedule))
    if entry.raw_schedule.startswith("@"):
        return f"{text} ({entry.raw_schedule}, {entry.timezone})"
    picked = [
        f"{FIELD_NAMES[i]} {mine} for {raw}"
        for i, (raw, mine) in enumerate(
            zip(words(entry.raw_schedule), entry.schedule.split(), strict=False)
        )
        if "~" in raw
    ]
    if picked:
        return f"{text} ({entry.timezone}; random ranges picked: {', '.join(picked)})"
    return f"{text} ({entry.timezone})"


def managed_entry(
    entry_id: str,
    command: str,
    schedule: str | None = None,
    run_at: datetime | None = None,
    timezone: str = "UTC",
) -> CronEntry:
    """An entry created through the API: a schedule line, or a one-shot `run_at`. An HTTP
    job's `command` is its crontab form (`| POST http://web:8080/... retries=3`).
    Raises SpecErrors (file `api`) when the schedule is invalid."""
    if (schedule is None) == (run_at is None):
        raise SpecErrors(
            [SpecError("api", None, "schedule", "give exactly one of schedule or run_at")]
        )
    if not command.strip():
        raise SpecErrors([SpecError("api", None, "command", "must not be empty")])
    request = None
    if is_request_line(command):
        try:
            request = parse_request_line(command)
        except RequestProblem as exc:
            raise SpecErrors([SpecError("api", None, f"request.{exc.field}", str(exc))]) from exc
    if run_at is not None:
        if run_at.tzinfo is None:
            raise SpecErrors([SpecError("api", None, "run_at", "needs a time zone offset")])
        return CronEntry(
            id=entry_id,
            line=0,
            schedule=f"@at {run_at.isoformat()}",
            raw_schedule=f"@at {run_at.isoformat()}",
            kind="once",
            command=command,
            stdin=None,
            env={},
            timezone=timezone,
            run_at=run_at,
            request=request,
        )
    assert schedule is not None
    if "\n" in schedule or "\n" in command:
        raise SpecErrors([SpecError("api", None, "schedule", "must be a single line")])
    tab = parse_crontab(f"{schedule} {command}\n", "api", timezone)
    if len(tab.entries) != 1:
        raise SpecErrors([SpecError("api", None, "schedule", "not a schedule line")])
    return replace(tab.entries[0], id=entry_id, line=0)
