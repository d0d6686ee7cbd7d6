"""What the webhook endpoint remembers: delivery keys (ids and body digests) for dedupe,
and the latest state of each pull request, both answered from memory and written by one
background writer, so that a delivery never waits for the database's write lock.

- Keys are claimed (in memory, atomically), then confirmed once the delivery is queued
  (only then written) or released if queuing failed: a 503 leaves nothing behind, so the
  provider's retry is taken. The memory and the table are bounded by age and count
  (`retention.deliveries_max_age` / `_count`); the age is the dedupe window.
- A PR state is kept only if its payload timestamp is not older than the recorded one:
  a replayed "opened" after a "closed" changes nothing. The table is read once per repo;
  from then on `pull_requests()` answers from memory (what was loaded plus every state
  kept since, written or not), so a pass never reads an older state than the last kept.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler.core.settings import RetentionSettings
from reconciler.storage.schema import deliveries, pull_requests

log = logging.getLogger(__name__)
MAINTENANCE_EVERY = 60.0  # seconds between two prunes by the writer


@dataclass(frozen=True)
class PullRequestState:
    """The latest word from a webhook about one PR (the source of truth without an API)."""

    number: int
    state: str
    action: str | None = None
    head_ref: str | None = None
    is_fork: bool = False
    draft: bool = False
    labels: tuple[str, ...] = ()
    updated_at: float = 0.0  # when it was recorded
    event_at: float | None = None  # the payload's own timestamp (orders states)

    @property
    def open(self) -> bool:
        return self.state == "open"


def pr_row(repo: str, pr: PullRequestState) -> dict[str, Any]:
    return {
        "repo": repo,
        "number": pr.number,
        "state": pr.state,
        "action": pr.action,
        "head_ref": pr.head_ref,
        "is_fork": pr.is_fork,
        "draft": pr.draft,
        "labels": json.dumps(list(pr.labels)),
        "updated_at": pr.updated_at or time.time(),
        "event_at": pr.event_at,
    }


class DeliveryLog:
    def __init__(
        self,
        engine: Engine,
        retention: RetentionSettings,
        insert_ignoring: Callable[[sa.Table], Any],
        maintenance: Iterable[Callable[[], object]] = (),
    ) -> None:
        self.engine = engine
        self.retention = retention
        self._insert_ignoring = insert_ignoring
        self.maintenance = list(maintenance)
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[str, str], float] | None = None  # oldest first
        self._latest: dict[str, dict[int, PullRequestState]] = {}  # per repo, loaded once
        self._writes: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._last_prune = time.monotonic()  # the first prune one interval after start
        self._thread = threading.Thread(target=self._writer, name="deliveries", daemon=True)
        self._thread.start()

    # -- delivery keys -------------------------------------------------------------------

    def claim(self, repo: str, keys: Iterable[str]) -> bool:
        """Hold `keys` for `repo` unless one was seen: True if none was (now held)."""
        wanted = [(repo, k) for k in keys]
        now = time.time()
        with self._lock:
            recent = self._memory(now)
            self._bound(recent, now)  # what fell out of the window is not a duplicate
            if any(k in recent for k in wanted):
                return False
            for k in wanted:
                recent[k] = now
            self._bound(recent, now)
        return True

    def release(self, repo: str, keys: Iterable[str]) -> None:
        """Forget held keys (queuing the delivery failed: its retry must be taken)."""
        with self._lock:
            recent = self._memory(time.time())
            for k in keys:
                recent.pop((repo, k), None)

    def confirm(self, repo: str, keys: Iterable[str]) -> None:
        """Make held keys durable (the delivery is queued)."""
        now = time.time()
        rows = [(repo, k, now) for k in keys]
        if rows:
            self._writes.put(("deliveries", rows))  # one put: one wake-up of the writer

    def remember(self, repo: str, key: str) -> bool:
        """claim + confirm of one key: True the first time it is seen for `repo`."""
        if not self.claim(repo, (key,)):
            return False
        self.confirm(repo, (key,))
        return True

    def _memory(self, now: float) -> OrderedDict[tuple[str, str], float]:
        if self._recent is None:
            since = now - self.retention.deliveries_max_age
            q = (
                sa.select(deliveries.c.repo, deliveries.c.delivery_id, deliveries.c.received_at)
                .where(deliveries.c.received_at >= since)
                .order_by(deliveries.c.received_at.desc())
                .limit(self.retention.deliveries_max_count)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(q).fetchall()
            self._recent = OrderedDict(
                ((r.repo, r.delivery_id), r.received_at) for r in reversed(rows)
            )
        return self._recent

    def _bound(self, recent: OrderedDict[tuple[str, str], float], now: float) -> None:
        oldest = now - self.retention.deliveries_max_age
        while recent and (
            len(recent) > self.retention.deliveries_max_count
            or next(iter(recent.values())) < oldest
        ):
            recent.popitem(last=False)

    def remembered(self) -> int:
        """How many keys are held in memory (bounded by the retention settings)."""
        with self._lock:
            return len(self._recent or ())

    # -- pull request states ----------------------------------------------------------

    def record(self, repo: str, pr: PullRequestState) -> bool:
        """Keep `pr` as the PR's state unless the recorded one is newer (by payload
        timestamp; a payload without one never overrides one with one). False: stale."""
        with self._lock:
            known = self._known(repo)
            current = known.get(pr.number)
            held = current.event_at if current is not None else None
            if held is not None and (pr.event_at is None or pr.event_at < held):
                return False
            known[pr.number] = pr
            # queued under the lock: the writer sees states in the order they were kept
            self._writes.put(("pr", (repo, pr)))
        return True

    def _known(self, repo: str) -> dict[int, PullRequestState]:
        known = self._latest.get(repo)
        if known is None:
            known = self._latest[repo] = self._load(repo)
        return known

    def _load(self, repo: str) -> dict[int, PullRequestState]:
        q = sa.select(pull_requests).where(pull_requests.c.repo == repo)
        with self.engine.connect() as conn:
            rows = conn.execute(q).fetchall()
        return {
            r.number: PullRequestState(
                r.number,
                r.state,
                r.action,
                r.head_ref,
                bool(r.is_fork),
                bool(r.draft),
                tuple(json.loads(r.labels or "[]")),
                r.updated_at,
                r.event_at,
            )
            for r in rows
        }

    def pull_requests(self, repo: str) -> dict[int, PullRequestState]:
        """Every PR state of `repo`: the table as loaded once, and every state recorded
        since (written or not yet), so a pass never reads one older than the last kept."""
        with self._lock:
            return dict(self._known(repo))

    # -- the writer ----------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer (idempotent)."""
        if self._thread.is_alive():
            self._writes.put(("stop", None))
            self._thread.join(timeout)

    def _writer(self) -> None:
        while True:
            try:
                batch = [self._writes.get(timeout=MAINTENANCE_EVERY)]
            except queue.Empty:
                batch = []
            stop = any(kind == "stop" for kind, _ in batch)
            while batch and len(batch) < 500:
                try:
                    batch.append(self._writes.get(timeout=0.05))
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:
                log.exception("could not record %d webhook deliveries / PR states", len(batch))
            finally:
                for _ in batch:
                    self._writes.task_done()
            if stop:
                return
            if time.monotonic() - self._last_prune >= MAINTENANCE_EVERY:
                self._last_prune = time.monotonic()
                for task in (self.prune, *self.maintenance):
                    try:
                        task()
                    except Exception as e:  # noqa: BLE001 — the database may be away: next time
                        log.warning("store maintenance failed: %s", e)

    def _write(self, batch: list[tuple[str, Any]]) -> None:
        rows = [
            {"repo": r, "delivery_id": d, "received_at": t}
            for kind, items in batch
            if kind == "deliveries"
            for r, d, t in items
        ]
        prs: dict[tuple[str, int], tuple[str, PullRequestState]] = {}
        for kind, item in batch:
            if kind == "pr":
                prs[(item[0], item[1].number)] = item  # the latest of a batch wins
        if not rows and not prs:
            return
        with self.engine.begin() as conn:
            if rows:
                conn.execute(self._insert_ignoring(deliveries), rows)
            if prs:  # one upsert for the batch (executemany), not a statement per PR
                conn.execute(self._upsert(), [pr_row(repo, pr) for repo, pr in prs.values()])

    def _upsert(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(pull_requests)
        keep = {c: stmt.excluded[c] for c in pr_row("", PullRequestState(0, "")) if c not in
                ("repo", "number")}  # fmt: skip
        return stmt.on_conflict_do_update(index_elements=["repo", "number"], set_=keep)

    def prune(self, now: float | None = None) -> int:
        """Delete deliveries older than the window and beyond the count; returns how many."""
        now = time.time() if now is None else now
        r = self.retention
        with self.engine.begin() as conn:
            gone = conn.execute(
                deliveries.delete().where(deliveries.c.received_at < now - r.deliveries_max_age)
            ).rowcount
            cutoff = conn.execute(
                sa.select(deliveries.c.received_at)
                .order_by(deliveries.c.received_at.desc())
                .offset(r.deliveries_max_count)
                .limit(1)
            ).scalar()
            if cutoff is not None:
                gone += conn.execute(
                    deliveries.delete().where(deliveries.c.received_at <= cutoff)
                ).rowcount
        with self._lock:
            if self._recent is not None:
                self._bound(self._recent, now)
        return int(gone)

    def flush(self) -> None:
        """Wait until everything remembered or recorded is on disk."""
        self._writes.join()
