"""The keyed per-environment queue: each environment is applied by its own work item.

In the manner of client-go's workqueue, a key (repo, environment) is at most once queued
and at most once in flight; a pass that hands over an environment while its work runs
leaves the new intent pending, and it runs once the current work ends. What differs is
**newest version wins**: when the pending intent converges to another version (another
spec hash, or removal) than the work in flight, that work is told at once
(`Work.superseded`) and stops at its next step (envwork/apply/health check the `Watch`
between steps, and a health wait's pause wakes immediately), so a push of a fix never
waits out the previous version's `start_period`.

Bounds: `workers` threads apply environments at once; of them at most `builds` hold a
build slot (a pull or an image build, which cost CPU and disk) at any moment, while
starts and health waits (nearly free) need none. A pass never waits for any of it.

Retries: work that failed with a retryable error (`Outcome.retry_after`) runs again
after that delay doubled per consecutive failure of the environment, at most
`max_backoff`; a new version or an explicit apply (`submit(reset=True)`) starts over.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from reconciler.core.errors import Abandoned, LeaseLost, Superseded
from reconciler.core.model import Action, ActionOp

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0  # seconds: the longest wait before a failing environment is retried
Key = tuple[str, str]  # (repo, environment)


@dataclass
class Intent:
    """What the latest pass wants for one environment. `stale`: planned against an
    observation older than work that ran since, so the worker observes again."""

    repo: str
    action: Action
    stale: bool = False
    retry: bool = True  # False: a caller waits for this one attempt (`hoody apply`)
    # In sync, but this process has not seen it healthy (adopted after a restart, maybe
    # in the middle of its health wait): probe it before it is reported healthy.
    verify: bool = False

    @property
    def key(self) -> Key:
        return (self.repo, self.action.env)

    @property
    def version(self) -> str:
        if self.action.op is ActionOp.REMOVE or self.action.desired is None:
            return "remove"
        return self.action.desired.spec_hash


@dataclass(frozen=True)
class Outcome:
    """How one work item ended: `error` is the pass-style line for `hoody apply`."""

    error: str | None = None
    retry_after: float | None = None  # retryable failure: run again after (backed off)


OK = Outcome()


@dataclass
class Work:
    """One environment's work in flight; the `Watch` its steps consult."""

    intent: Intent
    may_apply: Callable[[str], bool]
    slots: threading.BoundedSemaphore
    superseded: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False  # the service stops: leave everything as it is

    def check(self) -> None:
        if self.stopping:
            raise Abandoned(f"{self.intent.action.env}: the service is stopping")
        if self.superseded.is_set():
            raise Superseded(f"{self.intent.action.env}: a newer version is waiting")
        if not self.may_apply(self.intent.repo):
            raise LeaseLost(f"{self.intent.repo}: another replica leads the repo now")

    def pause(self, seconds: float) -> None:
        self.superseded.wait(seconds)
        self.check()

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        while not self.slots.acquire(timeout=0.2):  # waiting for a slot is a step too
            self.check()
        try:
            yield
        finally:
            self.slots.release()


Handler = Callable[[Intent, Work], Outcome]


class EnvQueue:
    def __init__(
        self,
        handle: Handler,
        workers: int = 32,
        builds: int = 4,
        may_apply: Callable[[str], bool] = lambda _repo: True,
        clock: Callable[[], float] = time.monotonic,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self._handle = handle
        self.workers = workers
        self.may_apply = may_apply
        self._slots = threading.BoundedSemaphore(builds)
        self._clock = clock
        self.max_backoff = max_backoff
        self._cond = threading.Condition()
        self._pending: dict[Key, Intent] = {}
        self._due: dict[Key, float] = {}
        self._running: dict[Key, Work] = {}
        self._failures: dict[Key, tuple[str, int]] = {}  # key -> (version, failures in a row)
        self._last: dict[Key, Outcome] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.superseded = 0  # work items told to stop for a newer version (metrics, tests)

    # -- handing over ------------------------------------------------------------------

    def submit(self, intent: Intent, reset: bool = False) -> None:
        """The newest intent for its environment; runs as soon as a worker is free and no
        work of the environment is in flight (then the work in flight is superseded if it
        converges elsewhere). `reset`: an explicit apply, retried at once."""
        key = intent.key
        with self._cond:
            if self._closed:
                return
            self._start_threads()
            failed = self._failures.get(key)
            if reset or (failed is not None and failed[0] != intent.version):
                self._failures.pop(key, None)
                failed = None
            running = self._running.get(key)
            if running is not None:
                intent.stale = True
                if running.intent.version != intent.version and not running.superseded.is_set():
                    running.superseded.set()
                    self.superseded += 1
            elif key in self._pending and self._pending[key].stale:
                intent.stale = True
            self._pending[key] = intent
            if running is None and (failed is None or key not in self._due):
                self._due[key] = self._clock()
                self._cond.notify()

    def busy(self, repo: str, env: str) -> bool:
        """Work of this environment is queued, backing off or in flight."""
        with self._cond:
            return (repo, env) in self._pending or (repo, env) in self._running

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._running

    def in_flight(self) -> int:
        with self._cond:
            return len(self._running)

    def depth(self) -> int:
        with self._cond:
            return len(self._pending)

    def failures(self, repo: str, env: str) -> int:
        with self._cond:
            return self._failures.get((repo, env), ("", 0))[1]

    def wait(self, keys: Iterable[Key], timeout: float | None = None) -> dict[Key, Outcome]:
        """Block until none of `keys` is in flight or due now (a retry backing off does
        not count), then their last outcomes: what `hoody apply` waits for."""
        wanted = set(keys)
        limit = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                busy = [
                    k
                    for k in wanted
                    if k in self._running
                    or (
                        k in self._pending
                        and self._due.get(k, now) <= now
                        and k not in self._failures
                    )
                ]
                if not busy or self._closed:
                    return {k: self._last.get(k, OK) for k in wanted}
                if limit is not None and now >= limit:
                    return {k: self._last.get(k, OK) for k in wanted}
                self._cond.wait(0.5 if limit is None else min(0.5, max(0.0, limit - now)))

    def settle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is in flight or due now (retries backing off aside); False
        if `timeout` passed first."""
        limit = time.monotonic() + timeout
        with self._cond:
            while self._running or any(
                k not in self._failures and t <= self._clock() for k, t in self._due.items()
            ):
                left = limit - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(0.5, left))
            return True

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking work; work in flight stops at its next step (left as it is: the
        next start observes it and carries on)."""
        with self._cond:
            self._closed = True
            for work in self._running.values():
                work.stopping = True
                work.superseded.set()  # wakes a health wait's pause
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # -- the workers -------------------------------------------------------------------

    def _start_threads(self) -> None:
        while len(self._threads) < self.workers:
            t = threading.Thread(target=self._loop, name=f"env-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()

    def _take(self) -> Work | None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                ready = [
                    (t, k) for k, t in self._due.items() if t <= now and k not in self._running
                ]
                if ready:
                    _, key = min(ready)
                    del self._due[key]
                    intent = self._pending.pop(key)
                    work = Work(intent, self.may_apply, self._slots)
                    self._running[key] = work
                    return work
                waits = [t - now for t in self._due.values() if t > now]
                self._cond.wait(min(waits) if waits else None)
            return None

    def _loop(self) -> None:
        while (work := self._take()) is not None:
            try:
                outcome = self._handle(work.intent, work)
            except Exception:  # a bug: contained, retried like any unexpected error
                log.exception("[%s/%s] environment work crashed", *work.intent.key)
                outcome = Outcome("unexpected error (see the log)", 30.0)
            self._done(work, outcome)

    def _done(self, work: Work, outcome: Outcome) -> None:
        key = work.intent.key
        with self._cond:
            del self._running[key]
            self._last[key] = outcome
            now = self._clock()
            if key in self._pending:  # handed over while it ran: the newer intent next
                self._due[key] = now
            elif outcome.retry_after is not None and work.intent.retry and not self._closed:
                version = work.intent.version
                n = self._failures.get(key, (version, 0))[1] + 1
                self._failures[key] = (version, n)
                work.intent.stale = True
                self._pending[key] = work.intent
                delay = min(self.max_backoff, outcome.retry_after * 2.0 ** min(n - 1, 32))
                self._due[key] = now + delay
                log.info("[%s/%s] next try in %.1fs (failure %d in a row)", *key, delay, n)
            elif outcome.error is None:
                self._failures.pop(key, None)
            self._cond.notify_all()
