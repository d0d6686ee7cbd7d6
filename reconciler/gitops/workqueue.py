"""A coalescing work queue keyed by repo, in the manner of client-go's workqueue.

A key is queued at most once; a key added while its pass runs is marked dirty and
queued exactly once more when the pass finishes. So a storm of webhooks for one repo
costs at most one extra pass, and two passes of one repo never run at once. With
`min_interval`, a pass that follows another because of adds during it starts at least
that far after the previous one, so a sustained storm costs a pass every `min_interval`,
not one after another; an add to an idle key still runs at once.

A pass that failed with a retryable error hands its first delay to `done()`: the key is
queued again after that delay doubled for each further consecutive failure, at most
`max_backoff` (client-go's per-item exponential rate limiter); a pass with nothing to
retry resets the count. An add (a webhook, a poll) still runs the key as usual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_BACKOFF = 300.0  # seconds: the longest wait before a failing repo is tried again


class WorkQueue:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.0,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self._clock = clock
        self.min_interval = min_interval
        self.max_backoff = max_backoff
        self._failures: dict[str, int] = {}  # consecutive retryable failures per key
        self._started: dict[str, float] = {}
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}  # queued keys -> when they may run
        self._running: set[str] = set()
        self._dirty: set[str] = set()
        self._closed = False
        self.adds = 0

    def add(self, key: str, delay: float = 0.0) -> None:
        with self._cond:
            self.adds += 1
            if self._closed:
                return
            if key in self._running:
                self._dirty.add(key)
                return
            when = self._clock() + delay
            if key in self._due:  # already waiting: a storm may not pull it forward
                when = max(when, self._earliest(key))
            if key not in self._due or when < self._due[key]:
                self._due[key] = when
                # only a new or earlier due time is news to a waiting worker: waking
                # one for every add of a storm costs a GIL hand-over per webhook
                self._cond.notify()

    def get(self, timeout: float | None = None) -> str | None:
        """The next due key not already running; None on timeout or shutdown."""
        limit = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                ready = [(t, k) for k, t in self._due.items() if t <= now]
                if ready:
                    _, key = min(ready)
                    del self._due[key]
                    self._running.add(key)
                    self._started[key] = now
                    return key
                waits = [t - now for t in self._due.values()]
                if limit is not None:
                    waits.append(limit - now)
                    if limit <= now:
                        return None
                self._cond.wait(min(waits) if waits else None)
            return None

    def done(self, key: str, retry_after: float | None = None) -> float | None:
        """The pass of `key` finished. `retry_after`: it failed with a retryable error
        whose first delay this is; None: nothing to retry (the backoff resets). Returns how
        long until the key runs again, None if nothing will run it."""
        with self._cond:
            self._running.discard(key)
            now = self._clock()
            if retry_after is None:
                self._failures.pop(key, None)
            else:
                n = self._failures[key] = self._failures.get(key, 0) + 1
                backoff = min(self.max_backoff, retry_after * 2.0 ** min(n - 1, 32))
                self._due[key] = now + backoff
            if key in self._dirty:  # added during the pass: new information, run it again
                self._dirty.discard(key)
                self._due[key] = max(now, self._earliest(key))
            self._cond.notify_all()
            return self._due[key] - now if key in self._due else None

    def failures(self, key: str) -> int:
        """Consecutive retryable failures of `key` (0 after a pass with nothing to retry)."""
        with self._cond:
            return self._failures.get(key, 0)

    def _earliest(self, key: str) -> float:
        last = self._started.get(key)
        return float("-inf") if last is None else last + self.min_interval

    def depth(self) -> int:
        with self._cond:
            return len(self._due) + len(self._dirty)

    def busy(self) -> bool:
        with self._cond:
            return bool(self._due or self._running or self._dirty)

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
