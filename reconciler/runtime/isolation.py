"""What keeps the engine's work for a branch from reaching the host on its behalf, or from
taking another environment's place: a client that sends no stored registry credentials
(builds and pulls for fork pull requests), a health probe that connects to one address
and follows nothing, and the refusal of a name another repo's environment holds."""

from __future__ import annotations

import http.client
from collections.abc import Mapping

import docker

from reconciler.core.errors import NameConflict
from reconciler.core.model import LABEL_ENV, LABEL_MANAGED, LABEL_REF, LABEL_REPO


def owns(have: Mapping[str, str] | None, want: Mapping[str, str]) -> bool:
    """`have` (an object's labels) are this environment's: hoody's, same repo and name."""
    have = have or {}
    return have.get(LABEL_MANAGED) == "true" and all(
        have.get(k) == want.get(k) for k in (LABEL_REPO, LABEL_ENV)
    )


def held(
    kind: str, what: str, name: str, have: Mapping[str, str], want: Mapping[str, str]
) -> NameConflict:
    """The name of a `kind` is held by another environment's object, or by a `what` (the
    object's own word: container, swarm service) hoody did not create: left alone."""
    if have.get(LABEL_MANAGED) == "true":
        return NameConflict(taken(kind, name, have, want))
    return NameConflict(
        f"{kind} name {name} is held by a {what} hoody did not create; it is left alone "
        "(rename or remove it to let this environment start)"
    )


def taken(kind: str, name: str, have: Mapping[str, str] | None, want: Mapping[str, str]) -> str:
    """Why `name` cannot be ours: held by another repo's environment (both refs named) or
    by an object hoody did not create."""
    have = have or {}
    if have.get(LABEL_MANAGED) == "true":
        return (
            f"environment name {want.get(LABEL_ENV)} is already used by repo "
            f"{have.get(LABEL_REPO)!r} ({have.get(LABEL_REF)}); repo {want.get(LABEL_REPO)!r} "
            f"({want.get(LABEL_REF)}) cannot have it: give the app another name in "
            ".hoody/app.yaml. That environment is left alone"
        )
    return f"{kind} {name} exists and was not created by hoody for this environment; left alone"


class Anonymous(docker.APIClient):  # type: ignore[misc]
    """A client that never sends the registry credentials stored on this host (its
    docker config and credential helpers): builds and pulls for fork pull requests."""

    def _set_auth_headers(self, headers: dict[str, str]) -> None:
        return None


def http_probe(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    """GET `path` from exactly `host:port`: 2xx is healthy; a redirect is reported, never
    followed (a container could point it at the server's own loopback)."""
    url = f"http://{host}:{port}{path}"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        status = resp.status
        location = resp.getheader("Location")
        resp.read(64 * 1024)
    except (OSError, http.client.HTTPException, ValueError) as e:
        return False, f"{url}: {e}"
    finally:
        conn.close()
    if 300 <= status < 400:
        where = (location or "(no Location)")[:200]
        return False, f"unhealthy: redirect to {where} from {url} (not followed)"
    return 200 <= status < 300, f"{status} from {url}"
