"""Waiting until a container is healthy, as a kubelet would, and the watch that lets
newer work for the same environment stop the wait at its next probe.

Kept apart from the applier because a health wait is the long step of an environment's
work (up to the check's `start_period`): it is where a newer commit must be able to cut
in (`Watch.pause` wakes at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from reconciler.core.errors import HealthTimeout
from reconciler.core.model import DesiredService
from reconciler.runtime import Progress, Runtime


class Watch(Protocol):
    """What an environment's work asks between its steps (envqueue.Work implements it)."""

    def check(self) -> None:
        """Raise Superseded (a newer version waits) or LeaseLost (another replica leads)."""

    def pause(self, seconds: float) -> None:
        """Sleep up to `seconds`; raise as `check` does as soon as the work is abandoned."""

    def building(self) -> AbstractContextManager[object]:
        """Hold one of the `workers` build slots (a pull or a build) while inside."""


class Unwatched:
    """The watch of work nobody can supersede (a call outside the queue)."""

    def check(self) -> None:
        return None

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def building(self) -> AbstractContextManager[object]:
        return nullcontext()


UNWATCHED = Unwatched()


def wait_healthy(
    runtime: Runtime,
    svc: DesiredService,
    cid: str,
    progress: Progress,
    *,
    publish_host: str,
    clock: Callable[[], float],
    sleep: Callable[[float], None] | None,
    watch: Watch,
) -> None:
    """Probe fast at first (a container is often ready in milliseconds), backing off to
    the check's interval; fail early when the container exits. `sleep` (tests) replaces
    the watch's interruptible pause."""
    hc = svc.spec.healthcheck
    start_period = hc.start_period if hc else 30.0
    deadline = clock() + start_period
    delay, last = 0.02, "not probed yet"
    progress(f"{svc.name}: waiting until healthy")
    while True:
        watch.check()
        state = runtime.inspect_container(cid)
        if not state.running:
            logs = runtime.logs(cid, tail=10).strip()
            raise HealthTimeout(
                f"{svc.name}: container {state.status} (exit code {state.exit_code})",
                output=logs,
            )
        if hc is None:
            ok, last = True, "running"
        elif hc.command:
            res = runtime.exec(cid, list(hc.command), timeout=hc.timeout)
            ok, last = res.exit_code == 0, f"command exited {res.exit_code}"
        else:
            port = hc.port or (svc.spec.ports[0] if svc.spec.ports else 80)
            ok, last = runtime.probe_http(state, port, hc.http or "/", hc.timeout, publish_host)
        if ok:
            progress(f"{svc.name}: healthy ({last})")
            return
        if clock() >= deadline:
            raise HealthTimeout(
                f"{svc.name}: not healthy after {start_period:.0f}s; last probe: {last}"
            )
        if sleep is not None:
            sleep(delay)
        else:
            watch.pause(delay)
        delay = min(delay * 1.5, hc.interval if hc else 1.0)
