"""Compose: `docker-compose.yml` for any Docker host, the schedule as ofelia labels.

Services keep their build (context, Dockerfile, args) or image, named volumes, one
network, ports (published on host ports Docker picks), health checks and resource
limits. The crontab becomes `ofelia.job-exec.<job>.*` labels on the cron service, which
an ofelia container (mcuadros/ofelia, `daemon --docker`) started next to the project
runs in that service's container, as hoody does; `x-hoody-crontab` keeps the original.

Build contexts are written relative to the folder the file is written to
(`ExportSource.repo_root`: the CLI computes it from `--dir`/`--repo` and `-o`), because
Compose resolves them from the file's own folder.

ofelia's cron (robfig/cron v1 in its released image) wants six fields with seconds first
and reads them in the ofelia container's local time, UTC. So each entry is converted on
its own: exactly to UTC when its zone has one offset; in a zone with daylight saving time
as one ofelia job per offset, each starting with an sh guard that ends it unless
`date +%z` under the zone's POSIX TZ rule (from the TZif footer: no tzdata needed in the
image) is that offset. `@every` that is a cron schedule is written as cron (aligned on
the epoch, as hoody runs it); another `@every` is ofelia's own, which counts from
ofelia's start (warned). Its `command` is split into words by gobs/args, not a shell, so
the job is `sh -c "<script>"` with `\\` and `"` escaped for that splitter. Every `$` is
written `$$` (the `cy` template filter) so Compose does not interpolate it; only the
deliberate `${NAME}` placeholders are interpolated.
"""

from __future__ import annotations

import posixpath
from typing import Any

from reconciler.core.model import ServiceSpec

from .base import (
    Collector,
    ExportSource,
    Job,
    build_args,
    cron_settings,
    duration,
    http_probe_command,
    jobs,
    same_in_every_offset,
    service_env,
)
from .httpjobs import CLIENT_IMAGE, client_note, request_job
from .schedules import (
    Schedule,
    ambiguous_days,
    entry_schedule,
    offset_guard,
    offset_text,
    posix_rule,
    shift_to_utc,
    zone_offsets,
)
from .templating import render_template

PLATFORM = "Compose (ofelia)"
HTTP_CLIENT = "hoody-http-jobs"
IDLE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    services = [_service(source, svc, out) for svc in source.app.services.values()]
    commands = [j for j in jobs(source) if j.entry.request is None]
    requests = [j for j in jobs(source) if j.entry.request is not None]
    labels = _ofelia_labels(source, commands, out)
    if labels:
        cron = next(s for s in services if s["name"] == source.app.cron_service)
        cron["labels"] = labels
    if requests:
        client = _http_client(source, requests, out)
        if client["labels"]:
            services.append(client)
    if labels or any(s["labels"] for s in services):
        out.warn(
            "the schedule runs only if an ofelia container runs next to this project: "
            "`docker run -d -v /var/run/docker.sock:/var/run/docker.sock:ro "
            "mcuadros/ofelia:latest daemon --docker`, in UTC (leave its TZ unset)"
        )
    cron_settings(source, out, PLATFORM, {"forbid", "user"})
    volumes = sorted({v for svc in source.app.services.values() for v in svc.volumes})
    text = render_template(
        "docker-compose.yml.j2",
        name=source.name,
        services=services,
        volumes=volumes,
        crontab=source.crontab_text,
        repo_root=source.repo_root if any(s["build"] for s in services) else None,
    )
    return {"docker-compose.yml": text}


def _service(source: ExportSource, svc: ServiceSpec, out: Collector) -> dict[str, Any]:
    build = None
    if svc.build is not None:
        build = {
            "context": posixpath.normpath(posixpath.join(source.repo_root, svc.build.context)),
            "dockerfile": svc.build.dockerfile,
            "args": build_args(source, svc, out),
        }
    health = None
    if svc.healthcheck is not None:
        hc = svc.healthcheck
        if hc.command is not None:
            test = ["CMD", *hc.command]
        else:
            assert hc.http is not None and hc.port is not None
            test = ["CMD-SHELL", http_probe_command(hc.http, hc.port)]
            out.warn(
                f"service {svc.name!r}: Compose health checks run inside the container, so "
                "the HTTP check needs wget or curl in the image"
            )
        health = {
            "test": test,
            "interval": duration(hc.interval),
            "timeout": duration(hc.timeout),
            "retries": hc.retries,
            "start_period": duration(hc.start_period),
        }
    return {
        "name": svc.name,
        "image": svc.image,
        "build": build,
        "command": list(svc.command) if svc.command else None,
        "entrypoint": list(svc.entrypoint) if svc.entrypoint else None,
        "env": service_env(source, svc, out),
        "ports": [str(p) for p in svc.ports],
        "volumes": dict(svc.volumes),
        "health": health,
        "memory": svc.resources.memory,
        "cpus": svc.resources.cpus,
        "user": svc.user,
        "working_dir": svc.working_dir,
        "labels": {},
    }


def _http_client(source: ExportSource, requests: list[Job], out: Collector) -> dict[str, Any]:
    """The service HTTP jobs run in: the client image, idle, on the app's network (where
    the services answer to their names), with the requests' variables; ofelia execs each
    request's curl script in it."""
    name = HTTP_CLIENT
    while name in source.app.services:
        name += "-x"
    env: dict[str, str] = {}
    scripts: dict[str, str] = {}
    for job in requests:
        script, variables = request_job(source, job, PLATFORM, None, out)
        env.update(variables)
        scripts[job.name] = script
    labels = _ofelia_labels(source, requests, out, scripts)
    if labels:
        out.warn(
            client_note(f"as ofelia job-exec jobs in service {name!r}")
            + "; that service idles on the app's network, where the request's service "
            "name resolves as it does for hoody"
        )
    return {
        "name": name,
        "image": CLIENT_IMAGE,
        "build": None,
        "command": None,
        "entrypoint": ["/bin/sh", "-c", IDLE],
        "env": env,
        "ports": [],
        "volumes": {},
        "health": None,
        "memory": None,
        "cpus": None,
        "user": None,
        "working_dir": None,
        "labels": labels,
    }


def _ofelia_labels(
    source: ExportSource,
    selected: list[Job],
    out: Collector,
    scripts: dict[str, str] | None = None,
) -> dict[str, str]:
    """ofelia job-exec labels for `selected`; `scripts`: the HTTP jobs' curl scripts
    (run as the client image's user), else the jobs' own, as the cron user."""
    labels: dict[str, str] = {}
    for job in selected:
        own = scripts[job.name] if scripts is not None else job.script
        for suffix, spec, guard in _schedules(job, out):
            prefix = f"ofelia.job-exec.{job.name}{suffix}"
            script = own if guard is None else f"{guard}; {own}"
            labels[f"{prefix}.schedule"] = spec
            labels[f"{prefix}.command"] = ofelia_command([job.entry.shell, "-c", script])
            if scripts is None:
                labels[f"{prefix}.user"] = source.app.cron.user
            if source.app.cron.concurrency == "forbid":
                labels[f"{prefix}.no-overlap"] = "true"
    if labels:
        labels["ofelia.enabled"] = "true"
    return labels


def _schedules(job: Job, out: Collector) -> list[tuple[str, str, str | None]]:
    """(label suffix, ofelia schedule, sh guard or None) for each ofelia job of `job`.

    ofelia reads every schedule in its own zone, UTC. An entry in a zone with daylight
    saving time becomes one job per UTC offset of that zone, each ending at once unless
    its offset is the one in force (`date +%z` under the zone's POSIX TZ rule)."""
    entry = job.entry
    schedule, problem = entry_schedule(entry)
    if schedule is None:
        every = entry.every if entry.kind == "every" else None
        if every is None or every != int(every):
            out.warn(f"{job.label}: not exported: {problem}")
            return []
        out.warn(
            f"{job.label}: ofelia counts @every from its own start, not from the Unix "
            f"epoch as hoody does: it first fires {int(every)}s after ofelia starts (or "
            "restarts), then at that interval"
        )
        return [("", f"@every {int(every)}s", None)]
    zone = schedule.timezone
    offsets = zone_offsets(zone) or []
    shifted = [shift_to_utc(schedule, o)[0] for o in offsets]
    utc = [s for s in shifted if s is not None]
    rule = posix_rule(zone)
    same = same_in_every_offset(schedule)
    if same is not None:
        return [_one(job, same, out)]  # the same UTC times whatever the offset
    if len(offsets) > 1 and len(utc) == len(offsets) and rule is not None:
        suffixes = [_suffix(o) for o in offsets]
        described = ", ".join(
            f"{job.name}{x} '0 {s.fields}'" for x, s in zip(suffixes, utc, strict=True)
        )
        out.warn(
            f"{job.label}: ofelia reads schedules in UTC and {zone} changes its offset, so "
            f"it is one ofelia job per offset ({described}), each running only while its "
            f"offset is in force (`TZ={rule} date +%z` in the container); on the nights "
            "the clocks change, a time in the skipped hour does not run and one in the "
            "repeated hour runs twice"
        )
        return [
            (x, _one(job, s, out)[1], offset_guard(rule, o))
            for x, s, o in zip(suffixes, utc, offsets, strict=True)
        ]
    why = "its times do not shift to one UTC cron line" if offsets else "no whole-minute offset"
    if len(offsets) > 1 and rule is None:
        why = f"no POSIX TZ rule found for {zone}"
    out.warn(
        f"{job.label}: ofelia reads schedules in UTC and {zone} cannot be converted "
        f"exactly ({why}); exported as written, so it fires at those times in UTC"
    )
    return [_one(job, Schedule(schedule.fields, "UTC"), out)]


def _suffix(offset: int) -> str:
    """`-utcp0100`, `-utcm0500`: a label-safe name part for a UTC offset."""
    text = offset_text(offset)
    return f"-utc{'p' if text[0] == '+' else 'm'}{text[1:]}"


def _one(job: Job, schedule: Schedule, out: Collector) -> tuple[str, str, None]:
    note = ambiguous_days(schedule.fields)
    if note:
        out.warn(f"{job.label}: {note}")
    return "", f"0 {schedule.fields}", None


def ofelia_command(argv: list[str]) -> str:
    """Words for gobs/args (ofelia's splitter): double quotes, `\\` escapes `\\` and `"`."""
    return " ".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in argv)
