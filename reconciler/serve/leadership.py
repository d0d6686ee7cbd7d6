"""This replica's share of the repos: leases taken, renewed and given up, one step every
`renew_every` seconds (`storage/leases.py` says why leases).

Each step records a heartbeat, renews what this replica holds and takes free or expired
leases up to its share (`ceil(repos / live replicas)`), trying repos in an order that
differs per replica (rendezvous hashing), so replicas that start together spread the repos
instead of racing for the same ones. A replica holding more than its share (another one
joined) gives the surplus up. `leads(repo)` is what the workers and the controller ask
before each step: it turns false as soon as the last renew that succeeded is older than
`ttl - renew_every`, which is before the row expires for anybody else, so a replica that
loses the database stops applying before another can start. Losing a lease only stops
work; nothing is ever torn down because of it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

from reconciler.storage.leases import Leases

log = logging.getLogger(__name__)


class Leadership:
    def __init__(
        self,
        leases: Leases,
        repos: Sequence[str],
        renew_every: float,
        on_gained: Callable[[str], None] = lambda _r: None,
        on_lost: Callable[[str], None] = lambda _r: None,
        clock: Callable[[], float] = time.monotonic,
        address: str | None = None,
        schedule_entries: Callable[[], int] | None = None,
    ) -> None:
        if renew_every * 2 >= leases.ttl:
            raise ValueError("renew_every must be less than half the lease ttl")
        self.leases = leases
        self.repos = list(repos)
        self.renew_every = renew_every
        self.on_gained = on_gained
        self.on_lost = on_lost
        self.clock = clock
        self.address = address
        self.schedule_entries = schedule_entries
        self.replicas: list[str] = [leases.holder]
        self.last_error: str | None = None
        self._held: dict[str, int] = {}  # repo -> epoch
        self._valid_until = 0.0  # clock(): leads() is false from then on
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def holder(self) -> str:
        return self.leases.holder

    def leads(self, repo: str, epoch: int | None = None) -> bool:
        """True while this replica holds `repo`'s lease (at `epoch`, if given)."""
        with self._lock:
            held = self._held.get(repo)
            valid = self.clock() < self._valid_until
        return valid and held is not None and (epoch is None or held == epoch)

    def led(self) -> dict[str, int]:
        """The repos this replica leads now, with their epoch."""
        with self._lock:
            if self.clock() >= self._valid_until:
                return {}
            return dict(self._held)

    def epoch(self, repo: str) -> int | None:
        return self.led().get(repo)

    def step(self) -> None:
        started = self.clock()
        try:
            entries = self.schedule_entries() if self.schedule_entries else None
            self.replicas = self.leases.heartbeat(self.address, entries) or [self.holder]
            held = self.leases.renew(self._held)
            share = math.ceil(len(self.repos) / max(1, len(self.replicas)))
            for repo in self._preference():
                if len(held) >= share:
                    break
                if repo not in held and (epoch := self.leases.acquire(repo)) is not None:
                    held[repo] = epoch
            surplus = [r for r in reversed(self._preference()) if r in held][
                : max(0, len(held) - share)
            ]
        except Exception as e:  # noqa: BLE001 - any database failure: keep, then lapse
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("leadership: cannot reach the database: %s", self.last_error)
            if self.clock() >= self._valid_until:
                self._set({})
            return
        self.last_error = None
        for repo in surplus:
            del held[repo]
        with self._lock:
            self._valid_until = started + self.leases.ttl - self.renew_every
        self._set(held)
        if surplus:
            self.leases.release(surplus)  # after they stopped: another replica takes them

    def _preference(self) -> list[str]:
        def score(repo: str) -> bytes:
            return hashlib.sha256(f"{self.holder}\0{repo}".encode()).digest()

        return sorted(self.repos, key=score, reverse=True)

    def _set(self, held: dict[str, int]) -> None:
        with self._lock:
            before, self._held = self._held, dict(held)
        for repo in sorted(set(before) - set(held)):
            log.warning("leadership: no longer leading %s", repo, extra={"repo": repo})
            self.on_lost(repo)
        for repo in sorted(set(held) - set(before)):
            log.info("leadership: leading %s (epoch %d)", repo, held[repo], extra={"repo": repo})
            self.on_gained(repo)
        for repo in sorted(set(held) & set(before)):
            if held[repo] != before[repo]:  # lost and taken back in between: a new term
                self.on_lost(repo)
                self.on_gained(repo)

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        self.step()
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.renew_every):
            self.step()

    def stop(self) -> None:
        """Stop renewing and give every lease up, so another replica takes over at once."""
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with self._lock:
            held, self._held, self._valid_until = list(self._held), {}, 0.0
        try:
            self.leases.release(held)
            self.leases.leave()
        except Exception as e:  # noqa: BLE001 - they expire on their own
            log.warning("leadership: could not give leases up (they expire): %s", e)
