"""Swarm Engine API calls the docker SDK has no method for (a rollback, a forced restart
of a service's tasks) and the overlay network of an environment."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from reconciler.core.errors import NameConflict, RuntimeConflict, RuntimeFailure
from reconciler.runtime.engine import NOT_FOUND, engine
from reconciler.runtime.isolation import owns, taken

log = logging.getLogger(__name__)
T = TypeVar("T")


def _post_spec(api: Any, svc: Mapping[str, Any], spec: Mapping[str, Any], **params: Any) -> None:
    """POST the service's spec back as an update (what `docker service update --force`
    and `docker service rollback` send), at the version it was read at."""
    url = api._url("/services/{0}/update", svc["ID"])
    params = {"version": svc["Version"]["Index"], **params}
    with engine(f"update service {svc['Spec'].get('Name')}"):
        api._raise_for_status(api._post_json(url, data=spec, params=params))


def read_and_write(name: str, write: Callable[[], T], attempts: int = 5) -> T:
    """`write` reads a service and writes it back at the version it read; while the swarm
    moves that version on in between (a rolling update or rollback under way), read and
    write again, a little later each time."""
    for attempt in range(attempts):
        try:
            return write()
        except RuntimeConflict:
            if attempt == attempts - 1:
                raise
            log.info("%s: service changed while being updated; reading it again", name)
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _fresh(api: Any, svc: Mapping[str, Any]) -> Mapping[str, Any]:
    with engine("inspect service"):
        return dict(api.inspect_service(svc["ID"]))


def rollback(api: Any, svc: Mapping[str, Any]) -> None:
    """The swarm's own rollback to the service's previous spec."""

    def write() -> None:
        current = _fresh(api, svc)
        _post_spec(api, current, current["Spec"], rollback="previous")

    read_and_write(svc["Spec"].get("Name", svc["ID"]), write)


def force_restart(api: Any, svc: Mapping[str, Any]) -> None:
    """New tasks for the same spec (`docker service update --force`)."""

    def write() -> None:
        current = _fresh(api, svc)
        spec = copy.deepcopy(dict(current["Spec"]))
        template = spec.setdefault("TaskTemplate", {})
        template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
        _post_spec(api, current, spec)

    read_and_write(svc["Spec"].get("Name", svc["ID"]), write)


def containers_of(api: Any, sid: str) -> list[Any]:
    """This node's containers of a service's tasks, stopped ones too."""
    label = f"com.docker.swarm.service.id={sid}"
    with engine("list containers"):
        return list(api.containers(all=True, filters={"label": [label]}) or [])


def ensure_overlay(api: Any, name: str, labels: Mapping[str, str]) -> None:
    """An attachable overlay network (one-off job tasks and `docker run --network` can
    join it); a name held by anything else is a NameConflict, never a takeover."""
    try:
        with engine("inspect network"):
            existing = api.inspect_network(name)
    except RuntimeFailure as e:
        if e.status != NOT_FOUND:
            raise
        with engine(f"create network {name}"):
            api.create_network(
                name,
                driver="overlay",
                attachable=True,
                scope="swarm",
                labels=dict(labels),
                check_duplicate=True,
            )
        return
    if not owns(existing.get("Labels"), labels):
        raise NameConflict(taken("network", name, existing.get("Labels"), labels))
    if existing.get("Driver") != "overlay":
        raise RuntimeFailure(
            f"network {name} is a {existing.get('Driver')} network (left by the docker "
            "runtime?); a swarm environment needs an overlay network under that name"
        )


def task_container_ports(api: Any, filters: list[str]) -> dict[str, dict[int, int]]:
    """container id -> its published tcp ports, for this node's task containers (a
    starting task's are not in the swarm's task status yet). Host mode binds IPv4 and
    IPv6 on two different ports: loopback is IPv4's."""
    with engine("list containers"):
        listed = api.containers(filters={"label": filters})
    return {
        c["Id"]: {
            int(p["PrivatePort"]): int(p["PublicPort"])
            for p in c.get("Ports") or []
            if p.get("PublicPort")
            and p.get("Type", "tcp") == "tcp"
            and ":" not in str(p.get("IP", ""))
        }
        for c in listed or []
    }
