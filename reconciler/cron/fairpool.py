"""A bounded worker pool that is fair between environments: a global limit on running
jobs, a per-environment limit, and round-robin between environments with work waiting,
so one environment's jobs can never starve the others."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)


class FairPool:
    def __init__(self, workers: int = 8, per_env: int = 2, name: str = "job") -> None:
        self.per_env = per_env
        self._cond = threading.Condition(threading.Lock())
        self._queues: OrderedDict[str, deque[Callable[[], None]]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._closed = False
        self._active = 0
        self._idle_waiters = 0  # threads in wait_idle(): they need every notification
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit_grouped(self, tasks: Mapping[str, Sequence[Callable[[], None]]]) -> int:
        """Hand over a whole firing step, already grouped by key, under one lock."""
        n = 0
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is shut down")
            queues = self._queues
            for key, fns in tasks.items():
                if not fns:
                    continue  # a queue in `_queues` is never empty
                q = queues.get(key)
                if q is None:
                    q = queues[key] = deque()
                q.extend(fns)
                n += len(fns)
            self._cond.notify(n)
        return n

    def _take(self) -> tuple[str, Callable[[], None]] | None:
        running = self._running
        for key in self._queues:  # we return right after changing the dict
            count = running.get(key, 0)
            if count >= self.per_env:
                continue
            queue = self._queues.pop(key)
            fn = queue.popleft()
            if queue:
                self._queues[key] = queue  # to the back: round-robin
            running[key] = count + 1
            return key, fn
        return None

    def _work(self) -> None:
        done: str | None = None  # key of the job this worker just finished
        while True:
            with self._cond:  # one lock section per job: the last one's end, the next's take
                if done is not None:
                    self._release_slot(done)
                item = self._take()
                while item is None:
                    if self._closed:
                        return
                    self._cond.wait()
                    item = self._take()
                self._active += 1
                if done is not None and self._queues:
                    self._cond.notify()  # the freed slot may let another worker take one
            key, fn = item
            try:
                fn()
            except Exception:
                log.exception("job crashed")
            except BaseException:
                with self._cond:
                    self._release_slot(key)
                raise
            done = key

    def _release_slot(self, key: str) -> None:
        self._active -= 1
        left = self._running[key] - 1
        if left:
            self._running[key] = left
        else:
            del self._running[key]
        if self._closed or self._idle_waiters:
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running. True if so."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._idle_waiters += 1
            try:
                while self._active or any(self._queues.values()):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                return True
            finally:
                self._idle_waiters -= 1

    def drop_queued(self, key: str | None = None) -> list[Callable[[], None]]:
        with self._cond:
            keys = [key] if key is not None else list(self._queues)
            dropped: list[Callable[[], None]] = []
            for k in keys:
                dropped.extend(self._queues.pop(k, ()))
            return dropped

    def shutdown(self, timeout: float) -> bool:
        """Stop taking work; wait up to `timeout` for running jobs. True if all finished."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while self._active and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            return self._active == 0
