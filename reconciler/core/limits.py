"""The server's `limits:` applied to what a branch asks for (pure).

A branch's files are refused when they ask for more than the operator allows, each
problem naming the field or the line and the limit (`limits.max_memory`); what a spec
leaves open gets the operator's defaults (`effective_resources`).
"""

from __future__ import annotations

from reconciler.core.crontab import Crontab
from reconciler.core.errors import SpecError
from reconciler.core.model import AppSpec, Resources
from reconciler.core.settings import LimitsSettings

_UNITS = ((1024**4, "t"), (1024**3, "g"), (1024**2, "m"), (1024, "k"))


def size_text(size: float) -> str:
    """`268435456` -> `256m`; exact multiples only, else bytes."""
    for factor, unit in _UNITS:
        if size >= factor and size % factor == 0:
            return f"{int(size // factor)}{unit}"
    return f"{int(size)} bytes"


def seconds_text(seconds: float) -> str:
    return f"{seconds:g}s"


def too_large(file: str, size: int, prefix: str, limits: LimitsSettings, key: str) -> SpecError:
    """A file over its size limit `limits.<key>`, naming the line on which it is crossed
    (`prefix` is the file's first `limit` bytes)."""
    limit = int(getattr(limits, key))
    line = prefix.count("\n") + 1
    return SpecError(
        file,
        line,
        None,
        f"the file is {size_text(size)}, over the server's limit of {size_text(limit)} "
        f"(limits.{key}; it is crossed on this line); nothing of it is used",
    )


def spec_problems(spec: AppSpec, limits: LimitsSettings, file: str) -> list[SpecError]:
    """Resources above the server's maxima, each naming the field and the limit."""
    errors = []
    for svc in spec.services.values():
        field = f"services.{svc.name}.resources"
        memory, cpus = svc.resources.memory, svc.resources.cpus
        if memory is not None and memory > limits.max_memory:
            errors.append(
                SpecError(
                    file,
                    None,
                    f"{field}.memory",
                    f"{size_text(memory)} is above the server's limit of "
                    f"{size_text(limits.max_memory)} (limits.max_memory)",
                )
            )
        if cpus is not None and cpus > limits.max_cpus:
            errors.append(
                SpecError(
                    file,
                    None,
                    f"{field}.cpus",
                    f"{cpus:g} is above the server's limit of {limits.max_cpus:g} "
                    "(limits.max_cpus)",
                )
            )
    return errors


def effective_resources(asked: Resources, limits: LimitsSettings) -> Resources:
    """What a container gets: the spec's values within the maxima, else the defaults."""
    memory = min(asked.memory, limits.max_memory) if asked.memory else limits.memory
    cpus = min(asked.cpus, limits.max_cpus) if asked.cpus else limits.cpus
    return Resources(memory=memory, cpus=cpus)


def crontab_problems(tab: Crontab, limits: LimitsSettings, file: str) -> list[SpecError]:
    """Too many entries (the first line beyond the limit is named) or an `@every` more
    often than `limits.min_every`. Any problem rejects the whole crontab."""
    errors = []
    if len(tab.entries) > limits.max_cron_entries:
        first = tab.entries[limits.max_cron_entries]
        errors.append(
            SpecError(
                file,
                first.line,
                None,
                f"more than {limits.max_cron_entries} entries ({len(tab.entries)}); "
                f"the server's limit is limits.max_cron_entries = {limits.max_cron_entries}",
            )
        )
    for entry in tab.entries:
        if entry.every is not None and entry.every < limits.min_every:
            errors.append(
                SpecError(
                    file,
                    entry.line,
                    None,
                    f"{entry.raw_schedule}: more often than the server allows "
                    f"(limits.min_every = {seconds_text(limits.min_every)})",
                )
            )
    return errors
