"""Running one cron job in an environment's container, and stopping it.

The Docker API cannot kill an exec. So every job runs with a marker variable
`HOODY_RUN_ID=<run id>` in its environment, which all its descendants inherit; to stop
a job we `docker exec` a small sweep (as root) that sends TERM — then, after a grace
period, KILL — to every process in the container whose /proc/<pid>/environ carries that
marker. It needs only `sh`, `tr` and `grep` in the image, and it also reaches
grandchildren that left the job's process group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.core.errors import ReconcilerError
from reconciler.core.httpjob import HttpRequest
from reconciler.core.redact import Masker
from reconciler.runtime import Runtime

log = logging.getLogger(__name__)

KEEP = 32 * 1024
MARKER = "HOODY_RUN_ID"
_SWEEP = (
    "for d in /proc/[0-9]*; do "
    'if tr "\\000" "\\n" < "$d/environ" 2>/dev/null | grep -qx "' + MARKER + '=$1"; '
    'then kill -"$2" "${d#/proc/}" 2>/dev/null; fi; done; '
    "for d in /proc/[0-9]*; do "
    'if tr "\\000" "\\n" < "$d/environ" 2>/dev/null | grep -qx "' + MARKER + '=$1"; '
    "then exit 1; fi; done; exit 0"
)


class OutputBuffer:
    """The first and the last 32 KiB of a stream, and how much was dropped between."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def write(self, data: bytes) -> None:
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        if len(self.tail) > self.keep:
            cut = len(self.tail) - self.keep
            self.dropped += cut
            del self.tail[:cut]

    def text(self, masker: Masker | None = None) -> str:
        """The kept output, with `masker`'s secret values replaced by `***`."""
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.dropped:
            if masker:
                head, tail = masker.mask_cut(head, tail)
            return f"{head}\n[... {self.dropped} bytes dropped ...]\n{tail}"
        return masker.mask(head + tail) if masker else head + tail


@dataclass(frozen=True)
class Job:
    run_id: int
    repo: str
    env: str
    entry_id: str
    container: str  # name of the container to exec in
    shell: str
    command: str
    stdin: str | None
    variables: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    timeout: float = 3600.0
    request: HttpRequest | None = None  # an HTTP job: made by the service, not exec'd
    services: Mapping[str, str] = field(default_factory=dict)  # service -> its container


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | failed | timed_out | cancelled | error
    exit_code: int | None
    stdout: str  # an HTTP job: the response body (head and tail)
    stderr: str  # an HTTP job: one line per attempt
    reason: str | None = None
    duration: float = 0.0  # seconds the job ran
    http_status: int | None = None  # an HTTP job: the last response's status


class Flag:
    """A set-once flag (`is_set` / `set`, like `threading.Event` without `wait`): one small
    object per armed firing instead of an Event's condition, lock and deque."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True


class Handle:
    """A running job: `cancel()` stops it (status `cancelled`). A firing claimed ahead has
    its handle among its entry's runs from the claim on, behind `gate` (shared by the
    firings of one instant and table), which is set when they start: until then it does
    not count as running. `gate` is None for a handle that counts."""

    __slots__ = ("cancelled", "gate", "kill")

    def __init__(self) -> None:
        self.cancelled = Flag()
        self.gate: Flag | None = None
        self.kill: Callable[[], None] | None = None

    @property
    def started(self) -> bool:
        return self.gate is None or self.gate.is_set()

    def cancel(self) -> None:
        self.cancelled.set()
        if self.kill is not None:
            self.kill()


class Runner(Protocol):
    def run(self, job: Job, handle: Handle) -> Outcome: ...


class DockerJobRunner:
    """Runs jobs with `docker exec`. `secrets(repo)` names the values masked in their
    stored output (the repo's `env` and every `${VAR}`-expanded setting): a job running
    `env` must not publish `DATABASE_URL` in the run log."""

    def __init__(
        self,
        runtime: Runtime,
        grace: float = 5.0,
        secrets: Callable[[str], Iterable[str]] | None = None,
        http: Runner | None = None,
    ) -> None:
        self.runtime = runtime
        self.grace = grace
        self.secrets = secrets
        self._maskers: dict[str, Masker] = {}
        self.http = http  # runs HTTP jobs (`httpjobs.HttpJobRunner`); None: they fail

    def masker(self, repo: str) -> Masker | None:
        if self.secrets is None:
            return None
        found = self._maskers.get(repo)
        if found is None:
            found = self._maskers[repo] = Masker(self.secrets(repo))
        return found

    def run(self, job: Job, handle: Handle) -> Outcome:
        if job.request is not None:
            if self.http is None:
                return Outcome("error", None, "", "", "HTTP jobs are not set up in this service")
            return self.http.run(job, handle)
        masker = self.masker(job.repo)
        out, err = OutputBuffer(), OutputBuffer()
        script = (
            job.command
            if job.stdin is None
            else (f'printf "%s\\n" "$HOODY_STDIN" | ( {job.command} )')
        )
        env = {**job.variables, MARKER: str(job.run_id)}
        if job.stdin is not None:
            env["HOODY_STDIN"] = job.stdin
        stop_reason: list[str] = []
        lock = threading.Lock()

        def stop(why: str) -> None:
            with lock:
                if stop_reason:
                    return
                stop_reason.append(why)
            threading.Thread(target=self._terminate, args=(job,), daemon=True).start()

        handle.kill = lambda: stop("cancelled")
        timer = threading.Timer(job.timeout, stop, args=("timed_out",))
        timer.daemon = True
        timer.start()
        try:
            if handle.cancelled.is_set():
                return Outcome("cancelled", None, "", "", "cancelled before it started")
            code = self.runtime.exec_stream(
                job.container,
                [job.shell, "-c", script],
                env,
                job.user,
                lambda stream, data: (out if stream == 1 else err).write(data),
            )
        except ReconcilerError as e:
            return Outcome("error", None, out.text(masker), err.text(masker), str(e))
        finally:
            timer.cancel()
        if stop_reason:
            why = stop_reason[0]
            reason = (
                f"exceeded the timeout of {job.timeout:g}s; processes terminated"
                if why == "timed_out"
                else "stopped"
            )
            return Outcome(why, code, out.text(masker), err.text(masker), reason)
        status = "succeeded" if code == 0 else "failed"
        return Outcome(status, code, out.text(masker), err.text(masker))

    def _terminate(self, job: Job) -> None:
        """TERM every process of the run, then KILL what is left after the grace."""
        try:
            if self._sweep(job, "TERM"):
                return
            deadline = time.monotonic() + self.grace
            while time.monotonic() < deadline:
                time.sleep(0.2)
                if self._sweep(job, "0"):
                    return
            self._sweep(job, "KILL")
        except ReconcilerError as e:
            log.warning("[%s/%s] could not stop run %d: %s", job.repo, job.env, job.run_id, e)

    def _sweep(self, job: Job, signal: str) -> bool:
        """Send `signal` to the run's processes; True when none is left."""
        cmd = ["/bin/sh", "-c", _SWEEP, "hoody-sweep", str(job.run_id), signal]
        result = self.runtime.exec(job.container, cmd, timeout=30, user="0")
        return result.exit_code == 0
