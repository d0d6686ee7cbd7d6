"""Several `hoody serve` replicas on one database: the service's side of leadership.

Each repo is led by one replica (`Leadership`, over the leases of `storage/leases.py`).
Only the leader runs the repo's passes and its environments' schedules; the others answer
the API, the dashboard and `/metrics` from the same database. A trigger that lands on a
replica that does not lead the repo (a webhook, the API) is written as a wake-up row,
which the leader polls every `replicas.wake_poll` seconds, so no webhook is lost whichever
replica the provider reaches. Gaining a repo queues a pass (which also rebuilds its
schedules, the run log's claim rows keep firings exactly-once); losing one drops its
schedules from this replica's scheduler without touching anything that runs.

On SQLite there is one replica by construction (the file is the state_dir's own), so it
leads every repo and takes no leases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from reconciler.core.settings import Settings
from reconciler.serve.leadership import Leadership
from reconciler.storage.leases import Leases
from reconciler.storage.store import Store

log = logging.getLogger(__name__)


def listen_url(host: str, port: int) -> str:
    """The address another replica on this machine reaches us at (set `public_url` when
    replicas run on several hosts)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Replicas:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        holder: str,
        queue_pass: Callable[[str], None],
        release_schedules: Callable[[str], None],
        note: Callable[[str, str, str], None],
        schedule_entries: Callable[[], int] = lambda: 0,
    ) -> None:
        cfg = settings.replicas
        self.enabled = store.engine.dialect.name == "postgresql"
        self.repos = [r.name for r in settings.repos]
        self.wake_poll = cfg.wake_poll
        self.leases = Leases(store.engine, holder, cfg.lease_ttl)
        self.leadership = Leadership(
            self.leases,
            self.repos,
            cfg.renew_every,
            on_gained=self._gained,
            on_lost=self._lost,
            address=settings.public_url or listen_url(settings.server.host, settings.server.port),
            schedule_entries=schedule_entries,
        )
        self._local_entries = schedule_entries
        self._queue_pass = queue_pass
        self._release_schedules = release_schedules
        self._note = note
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_wakeup = 0

    def leads(self, repo: str) -> bool:
        return self.leadership.leads(repo) if self.enabled else True

    def led(self) -> dict[str, int]:
        return self.leadership.led() if self.enabled else dict.fromkeys(self.repos, 0)

    def leader_address(self, repo: str) -> str | None:
        """Where the replica that holds `repo`'s lease answers (None: no holder known)."""
        try:
            holder = next((x.holder for x in self.leases.all() if x.repo == repo), None)
            if holder is None:
                return None
            found = [r for r in self.leases.replicas() if r["id"] == holder]
        except Exception as e:  # noqa: BLE001 - the caller answers "retry"
            log.warning("[%s] could not read who leads it: %s", repo, e)
            return None
        return found[0]["address"] if found else None

    def schedule_entries(self) -> int:
        """Cron entries scheduled: by every live replica together (each heartbeat says
        its own), or by this one alone (without replicas, or with the database away)."""
        if not self.enabled:
            return self._local_entries()
        try:
            return self.leases.schedule_entries()
        except Exception as e:  # noqa: BLE001 - a scrape answers what it knows
            log.debug("schedule entries of the replicas: %s", e)
            return self._local_entries()

    def wake(self, repo: str, reason: str) -> None:
        """A trigger for a repo this replica does not lead: tell its leader."""
        if not self.enabled or self.leads(repo):
            return
        try:
            self.leases.wake(repo, reason)
        except Exception as e:  # noqa: BLE001 - the leader's poll still comes
            log.warning("[%s] could not hand the trigger to its leader: %s", repo, e)

    def _gained(self, repo: str) -> None:
        self._note(repo, "leading", f"replica {self.leadership.holder} leads {repo}")
        self._queue_pass(repo)

    def _lost(self, repo: str) -> None:
        self._note(repo, "not_leading", f"replica {self.leadership.holder} no longer leads {repo}")
        self._release_schedules(repo)

    def start(self) -> None:
        if not self.enabled:
            return
        try:
            self._last_wakeup, _ = self.leases.wakeups_after(0, [])
        except Exception as e:  # noqa: BLE001 - the first step reports it
            log.warning("leadership: %s", e)
        self.leadership.start()
        self._thread = threading.Thread(target=self._poll, name="wakeups", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.wake_poll):
            led = self.led()
            try:
                self._last_wakeup, woken = self.leases.wakeups_after(self._last_wakeup, led)
            except Exception as e:  # noqa: BLE001 - try again at the next poll
                log.debug("wake-ups: %s", e)
                continue
            for repo in sorted(woken):
                self._queue_pass(repo)

    def stop(self) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.leadership.stop()
