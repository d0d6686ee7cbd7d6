"""A cron job as a one-off swarm service, for a service whose task runs on a node whose
engine this process cannot reach: the environment service's own task template (image,
env, network, volumes, limits) with the job's command, no health check, no published
port and `restart_condition: none`, so the swarm runs it once wherever it places it.
Its output comes back through the service's logs once the task ended; the service is
removed afterwards. It carries the environment's repo and env labels but not
`hoody.managed`, so it is never observed as part of the environment.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from docker.types import RestartPolicy

from reconciler.core.errors import RuntimeFailure
from reconciler.core.model import LABEL_ENV, LABEL_REPO
from reconciler.runtime import swarmspec as ss
from reconciler.runtime.engine import engine

log = logging.getLogger(__name__)

LABEL_JOB = "hoody.job"
_DONE = ("complete", "failed", "rejected", "shutdown", "orphaned", "remove")
_LIMIT = 24 * 3600.0  # a job's own timeout stops it well before; this bounds the wait


def job_spec(
    service: Mapping[str, Any], command: list[str], env: Mapping[str, str], user: str | None
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(name, task template, labels) of the one-off service for one run."""
    spec = service.get("Spec") or {}
    labels = spec.get("Labels") or {}
    template = copy.deepcopy(spec.get("TaskTemplate") or {})
    container = template.setdefault("ContainerSpec", {})
    container.pop("Healthcheck", None)
    container["Command"] = list(command)
    container.pop("Args", None)
    merged = [e for e in container.get("Env") or [] if e.split("=", 1)[0] not in env]
    container["Env"] = merged + [f"{k}={v}" for k, v in env.items()]
    if user:
        container["User"] = user
    run = uuid.uuid4().hex[:10]
    job_labels = {LABEL_REPO: labels.get(LABEL_REPO, ""), LABEL_ENV: labels.get(LABEL_ENV, "")}
    container["Labels"] = {**job_labels, LABEL_JOB: run}
    template["RestartPolicy"] = RestartPolicy(condition="none")
    template.pop("ForceUpdate", None)
    name = f"{str(spec.get('Name', 'job'))[:40]}-job-{run}"
    return name, template, {**job_labels, LABEL_JOB: run}


def run_once(
    api: Any,
    service: Mapping[str, Any],
    command: list[str],
    env: Mapping[str, str],
    user: str | None,
    on_output: Callable[[int, bytes], None],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    """Run `command` once as its own service; returns the task's exit code."""
    name, template, labels = job_spec(service, command, env, user)
    with engine(f"create job service {name}"):
        created = api.create_service(template, name=name, labels=labels)
    sid = created["ID"]
    try:
        deadline = clock() + _LIMIT
        delay = 0.05
        while True:
            with engine("list job tasks"):
                tasks = api.tasks(filters={"service": sid})
            done = [t for t in tasks if ss.task_state(t) in _DONE]
            if done:
                task = done[0]
                break
            if clock() >= deadline:
                raise RuntimeFailure(f"job service {name} did not finish")
            sleep(delay)
            delay = min(delay * 1.5, 1.0)
        for stream, flags in ((1, {"stdout": True}), (2, {"stderr": True})):
            with engine("job logs"):
                for chunk in api.service_logs(sid, follow=False, **flags):
                    on_output(stream, chunk)
        status = task.get("Status") or {}
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        if code is None:
            raise RuntimeFailure(
                f"job service {name}: task {ss.task_state(task)}: {status.get('Err')}"
            )
        return int(code)
    finally:
        try:
            with engine(f"remove job service {name}"):
                api.remove_service(sid)
        except RuntimeFailure as e:
            log.warning("could not remove job service %s: %s", name, e)
