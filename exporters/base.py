"""What every exporter shares: the input (`ExportSource`), the output (`ExportResult`), and
the platform-neutral facts derived from a spec once — each service's environment with
values replaced by `${NAME}` placeholders, the image to run, and each cron job as a
`sh -c` script.

Secrets: the values of `ExportSource.secret_env` are never read here or anywhere in
`exporters`; only their names are, to emit placeholders. Nor is any text from the branch
(commands, crontab) searched for secret values and masked: masking would tell whoever
can read an export whether a guess they committed equals a secret.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from reconciler.core.crontab import CronEntry, Crontab
from reconciler.core.errors import ExportError as ExportError  # re-exported: exporters.ExportError
from reconciler.core.model import AppSpec, ServiceSpec
from reconciler.core.naming import slugify

from .schedules import (
    Schedule,
    ambiguous_days,
    entry_schedule,
    is_utc,
    shift_to_utc,
    to_utc,
    zone_offsets,
)
from .templating import Var

WARNINGS_FILE = "HOODY-EXPORT-WARNINGS.txt"
ENV_EXAMPLE = ".env.example"


@dataclass(frozen=True)
class ExportSource:
    """One environment as an exporter sees it."""

    name: str  # environment name, e.g. "main-shop"
    app: AppSpec
    crontab: Crontab | None
    secret_env: Mapping[str, str]  # the repo's env from hoody.yaml; values are never output
    include_spec_values: bool = False
    crontab_text: str | None = None  # the original .hoody/crontab, for formats that keep it
    # The repository's root seen from the folder the files are written to (POSIX path):
    # paths into the repository (Compose build contexts) are written relative to it.
    repo_root: str = "."
    # Said about the source itself (a fork's withheld env...): returned as warnings.
    notes: tuple[str, ...] = ()


@dataclass
class ExportResult:
    files: dict[str, str]
    warnings: list[str]


@dataclass
class Placeholder:
    """A variable the person deploying the export must set."""

    name: str
    why: str
    example: str = ""


@dataclass
class Collector:
    """Warnings and placeholders gathered while rendering one export."""

    warnings: list[str] = field(default_factory=list)
    placeholders: dict[str, Placeholder] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def need(self, name: str, why: str, example: str = "") -> str:
        """Register variable `name` and return its `${NAME}` placeholder."""
        self.placeholders.setdefault(name, Placeholder(name, why, example))
        return Var("${" + name + "}")


def shared_volumes(source: ExportSource) -> dict[str, list[str]]:
    """Named volumes that several services mount, with those services."""
    users: dict[str, list[str]] = {}
    for svc in source.app.services.values():
        for vol in svc.volumes:
            users.setdefault(vol, []).append(svc.name)
    return {vol: names for vol, names in users.items() if len(names) > 1}


def env_key(text: str) -> str:
    """An environment variable name made from any text: `web-api` -> `WEB_API`."""
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_") or "X"


def service_env(source: ExportSource, service: ServiceSpec, out: Collector) -> dict[str, str]:
    """The service's variables as the platform should see them: every value a placeholder,
    except values committed in app.yaml when `include_spec_values` is set."""
    names = list(service.env)
    names += [n for n in source.secret_env if n not in service.env]
    shared = _clashing_names(source.app)
    env: dict[str, str] = {}
    for name in names:
        if name in source.secret_env:
            env[name] = out.need(name, "secret: from the server's hoody.yaml (repo env)")
        elif source.include_spec_values:
            env[name] = service.env[name]
        else:
            var = f"{env_key(service.name)}_{name}" if name in shared else name
            where = f".hoody/app.yaml services.{service.name}.env.{name}"
            env[name] = out.need(var, f"set in {where} (export with --include-spec-values)")
    return env


def _clashing_names(app: AppSpec) -> set[str]:
    """Env names that services set to different values: they get per-service placeholders."""
    values: dict[str, set[str]] = {}
    for svc in app.services.values():
        for name, value in svc.env.items():
            values.setdefault(name, set()).add(value)
    return {name for name, seen in values.items() if len(seen) > 1}


def build_args(source: ExportSource, service: ServiceSpec, out: Collector) -> dict[str, str]:
    assert service.build is not None
    if source.include_spec_values:
        return dict(service.build.args)
    prefix = f"{env_key(service.name)}_BUILD_"
    where = f".hoody/app.yaml services.{service.name}.build.args"
    return {k: out.need(prefix + k, f"build argument from {where}") for k in service.build.args}


def image_ref(service: ServiceSpec, out: Collector, platform: str) -> str:
    """The image a platform without a build step runs: the spec's, or a placeholder."""
    if service.image is not None:
        return service.image
    assert service.build is not None
    var = f"IMAGE_{env_key(service.name)}"
    out.warn(
        f"service {service.name!r} is built from {service.build.context}/"
        f"{service.build.dockerfile}: {platform} does not build it; build and push it to a "
        f"registry yourself and set {var} to the pushed image"
    )
    return out.need(var, f"image of service {service.name!r}, built and pushed by you")


# Formats whose files are meant to go through envsubst, and how to apply them then.
SUBSTITUTED = {
    "kubernetes": "for f in *.yaml; do echo ---; envsubst {names} < $f; done | kubectl apply -f -",
    "ecs": "envsubst {names} < task-definition.json > /tmp/task.json && aws ecs "
    "register-task-definition --cli-input-json file:///tmp/task.json  (cron/*.json alike: "
    "aws scheduler create-schedule)",
    "cloudrun": "envsubst {names} < service.yaml > /tmp/service.yaml && "
    "gcloud run services replace /tmp/service.yaml  (jobs/*.yaml and scheduler/*.json alike)",
}


def envsubst_names(out: Collector) -> str:
    """envsubst's SHELL-FORMAT argument naming exactly our placeholders: any other `$`
    text is left alone (and the files write none: `substitutable` templates)."""
    return shlex.quote(" ".join(f"${name}" for name in sorted(out.placeholders)))


def env_example(source: ExportSource, out: Collector, fmt: str) -> str:
    lines = [
        f"# Variables the {fmt} export of {source.name} needs.",
        "# Copy to .env (or set them in the platform) and fill in; never commit real values.",
        "# Every ${NAME} in the exported files stands for one of these.",
    ]
    if fmt in SUBSTITUTED and out.placeholders:
        lines += [
            "# Substitute them with exactly these names (envsubst then leaves every other $):",
            "#   set -a; . ./.env; set +a",
            "#   " + SUBSTITUTED[fmt].format(names=envsubst_names(out)),
        ]
    for p in sorted(out.placeholders.values(), key=lambda p: p.name):
        lines += ["", f"# {p.why}".replace("\n", " "), f"{p.name}={p.example}"]
    return "\n".join(lines) + "\n"


def warnings_file(source: ExportSource, out: Collector, fmt: str) -> str:
    head = f"Warnings from the {fmt} export of {source.name}: what could not be expressed."
    return "\n".join([head, "", *(f"- {w}" for w in out.warnings)]) + "\n"


# -- cron jobs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One crontab entry as a platform-neutral job."""

    name: str  # DNS label, unique in the export, stable while the entry's id is
    entry: CronEntry
    service: ServiceSpec  # the service whose image and environment the job uses
    script: str  # one line of POSIX sh: exports, then the command (stdin piped in)

    @property
    def argv(self) -> list[str]:
        return [self.entry.shell, "-c", self.script]

    @property
    def label(self) -> str:
        return f".hoody/crontab:{self.entry.line}: {self.entry.raw_schedule} {self.entry.command}"


def jobs(source: ExportSource) -> list[Job]:
    if source.crontab is None:
        return []
    service = source.app.services[source.app.cron_service]
    return [
        Job(job_name(entry), entry, service, job_script(entry)) for entry in source.crontab.entries
    ]


def job_name(entry: CronEntry) -> str:
    """`heartbeat-sh-3fa2b1` from `/jobs/heartbeat.sh` and the entry id."""
    if entry.request is not None:  # `digest-3fa2b1` from `POST http://web:8080/tasks/digest`
        segments = [s for s in urlsplit(entry.request.url).path.split("/") if s]
        base = segments[-1] if segments else entry.request.method.lower()
    else:
        words = shlex.split(entry.command, posix=True) if _splittable(entry.command) else []
        base = words[0].rsplit("/", 1)[-1] if words else ""
    slug = slugify(base)[:24].strip("-") or "job"
    return f"{slug}-{entry.id[:6]}"


def _splittable(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def job_script(entry: CronEntry, rewrite: Callable[[str], str] = lambda text: text) -> str:
    """The entry as one line of sh that behaves as hoody runs it: the crontab's variables
    exported, stdin (after `%`) piped in. No raw newline, so any launcher can carry it.
    `rewrite` is applied to the shell text of each variable and of the command (never to
    stdin): `calls.reach_app` points URLs of the app at the platform's names there."""
    parts = [f"export {name}={rewrite(shlex.quote(value))}" for name, value in entry.env.items()]
    command = rewrite(entry.command)
    if entry.stdin is None:
        parts.append(command)
    else:
        lines = " ".join(shlex.quote(line) for line in entry.stdin.split("\n"))
        parts.append(f"printf '%s\\n' {lines} | ( {command} )")
    return "; ".join(parts)


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from `parts`, shortened with a hash when it would be too long."""
    text = slugify("-".join(p for p in parts if p)) or "x"
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: limit - 9].rstrip('-')}-{digest}"


def seconds(value: float) -> int:
    """Whole seconds, at least 1: most platforms take integers."""
    return max(1, int(-(-value // 1)))


def duration(value: float) -> str:
    """`30s`, `1.5s`: Compose/Go duration text."""
    return f"{value:g}s"


def http_probe_command(path: str, port: int) -> str:
    """A shell health check for platforms that only run commands: wget, else curl."""
    url = shlex.quote(f"http://127.0.0.1:{port}{path}")
    return f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}"


def cron_settings(source: ExportSource, out: Collector, platform: str, has: set[str]) -> None:
    """Warn about each non-default `cron:` setting of app.yaml that `platform` lacks.

    `has` names what the platform does: timeout, retries, forbid, replace, user, deadline.
    """
    if source.crontab is None or not source.crontab.entries:
        return
    cron = source.app.cron
    missing = []
    if "timeout" not in has:
        missing.append(f"timeout ({cron.timeout:g}s): jobs are not stopped when it passes")
    if cron.retries and "retries" not in has:
        missing.append(f"retries ({cron.retries}): failed jobs are not retried")
    if cron.concurrency != "allow" and cron.concurrency not in has:
        missing.append(f"concurrency ({cron.concurrency}): runs of a job may overlap")
    if cron.jitter:
        missing.append(f"jitter ({cron.jitter:g}s): jobs start on the minute")
    if cron.pause_after_failures:
        missing.append("pause_after_failures: a failing job keeps being started")
    if cron.user not in ("root", "0") and "user" not in has:
        missing.append(f"user ({cron.user}): jobs run as the image's user")
    for what in missing:
        out.warn(f"cron.{what} — {platform} has no equivalent")


def same_in_every_offset(schedule: Schedule) -> Schedule | None:
    """The UTC schedule when it is the same whatever offset the zone is at (`*/10 * * *
    *` in any zone with whole-hour offsets), else None."""
    offsets = zone_offsets(schedule.timezone) or []
    shifted = {s.fields if s else None for s in (shift_to_utc(schedule, o)[0] for o in offsets)}
    if len(shifted) == 1 and None not in shifted:
        return Schedule(shifted.pop() or "", "UTC")
    return None


def utc_fields(
    job: Job,
    out: Collector,
    platform: str,
    inexact: Callable[[str, str], str] | None = None,
) -> str | None:
    """The job's five fields for a platform that reads every schedule in UTC: converted
    when that is exact, else as written with a warning (`inexact(zone, problem)` words
    it); None (warned) when not cron."""
    schedule, problem = entry_schedule(job.entry)
    if schedule is None:
        out.warn(f"{job.label}: not exported: {problem}")
        return None
    if not is_utc(schedule.timezone):
        utc, problem = to_utc(schedule)
        if utc is None:
            utc = same_in_every_offset(schedule)
        if utc is None:
            out.warn(
                f"{job.label}: "
                + (
                    inexact(schedule.timezone, problem or "")
                    if inexact
                    else f"{platform} reads schedules in UTC, and {problem}; exported "
                    f"as written, so it fires at those times in UTC, not {schedule.timezone}"
                )
            )
        else:
            schedule = utc
    note = ambiguous_days(schedule.fields)
    if note:
        out.warn(f"{job.label}: {note}")
    return schedule.fields
