"""The docker SDK's errors mapped onto our tree, shared by the engine's runtimes (plain
containers and swarm services): an unreachable engine (tear nothing down, retry) vs an
operation the engine refused (its status kept, so callers can tell 404 and 409 apart)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions

from reconciler.core.errors import RuntimeConflict, RuntimeFailure, RuntimeUnavailable

# A proxy in front of the engine (or the engine itself) saying "not now". Any other status
# is the engine's answer about this operation (a 500 too: an invalid mount mode is one).
UNAVAILABLE = frozenset({502, 503, 504})
NOT_FOUND = 404
CONFLICT = 409
# A swarm service updated at a version it no longer has (the swarm, or another client,
# changed it after it was read); the engine answers 500 with this text, no status of its own.
OUT_OF_SEQUENCE = "update out of sequence"


@contextmanager
def engine(what: str) -> Iterator[None]:
    """Map SDK errors onto our tree: unreachable engine vs refused operation."""
    try:
        yield
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        raise RuntimeUnavailable(f"docker engine unreachable during {what}: {e}") from e
    except docker.errors.NotFound as e:
        raise RuntimeFailure(f"{what}: not found: {e.explanation}", status=NOT_FOUND) from e
    except docker.errors.APIError as e:
        if e.status_code in UNAVAILABLE:
            raise RuntimeUnavailable(f"{what}: {e.explanation}") from e
        message = f"{what}: {e.explanation or e}"
        if OUT_OF_SEQUENCE in str(e.explanation or ""):  # the swarm's optimistic lock
            raise RuntimeConflict(message, status=e.status_code) from e
        raise RuntimeFailure(message, status=e.status_code) from e
    except docker.errors.DockerException as e:
        raise RuntimeUnavailable(f"docker engine unavailable during {what}: {e}") from e
