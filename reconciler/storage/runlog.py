"""Run history of scheduled jobs (SQLAlchemy Core, same database as the store).

Each firing is *claimed* by inserting its row before it runs; the unique key
(environment, entry, scheduled time, attempt) makes two scheduler instances sharing one
database run it once. The scheduler claims the firings of one instant together, in one
`INSERT ... ON CONFLICT DO NOTHING RETURNING` (`claim_many`), ahead of the instant: such
a row is `claimed` (not a run yet, so listings leave it out) until the hand-over at the
instant marks it `running`, or it is given back (deleted) if its entry went away first.

What follows the hand-over (the `running` mark, the finish, the history trim) goes through
one writer thread that batches whatever is queued into one transaction (`started_later`,
`finish_later`, `trim_later`, `flush`): a burst of 10,000 finishes is a handful of
transactions, not 10,000. The rare `skip` and `unclaim` are written at once. A crash can
lose the last few milliseconds of finishes; those runs are then recorded `interrupted` at
the next start, which is the truth as far as the log can know it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconciler.storage.runrows import CLAIMED, FINAL, NOT_STARTED, Claim, RunRecord, record
from reconciler.storage.schema import metadata, runs

log = logging.getLogger(__name__)

__all__ = ["CLAIMED", "FINAL", "NOT_STARTED", "Claim", "RunLog", "RunRecord", "runs"]
WRITE_BATCH = 5000  # queued writes per transaction at most
OUTAGE_PATIENCE = 600.0  # seconds queued writes wait for a database that is down


def _dialect_insert(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


class RunLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, tables=[runs])
        self._claim_stmt = (
            _dialect_insert(engine)(runs)
            .on_conflict_do_nothing()
            .returning(runs.c.id, runs.c.env, runs.c.entry_id, runs.c.scheduled_for, runs.c.attempt)
        )
        self._writes: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # the DB-API placeholder for the writer's driver-level statements
        self._ph = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()

    def claim(
        self,
        *,
        repo: str,
        env: str,
        entry_id: str,
        line: int | None,
        schedule: str,
        command: str,
        trigger: str,
        scheduled_for: float,
        attempt: int = 1,
        status: str = "running",
        owner: str | None = None,
        reason: str | None = None,
    ) -> int | None:
        """Insert the run's row; None if another scheduler already claimed this firing."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                res = conn.execute(
                    runs.insert().values(
                        repo=repo,
                        env=env,
                        entry_id=entry_id,
                        line=line,
                        schedule=schedule,
                        command=command,
                        trigger=trigger,
                        scheduled_for=scheduled_for,
                        attempt=attempt,
                        status=status,
                        owner=owner,
                        reason=reason,
                        started_at=now if status == "running" else None,
                        finished_at=None if status == "running" else now,
                    )
                )
                key = res.inserted_primary_key
                assert key is not None
                return int(key[0])
        except sa.exc.IntegrityError:
            return None

    def claim_many(self, claims: Sequence[Claim], owner: str | None) -> list[int | None]:
        """Claim many firings at once, as `claimed` rows: `INSERT ... ON CONFLICT DO
        NOTHING RETURNING`, all in one transaction. The result is aligned with `claims`:
        the run id, or None where another scheduler instance already holds that firing."""
        if not claims:
            return []
        rows = [
            {**c.row(), "status": CLAIMED, "owner": owner, "started_at": c.planned_start}
            for c in claims
        ]
        got: dict[tuple[str, str, float, int], int] = {}
        with self.engine.begin() as conn:
            # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends multi-row
            # VALUES batches from one compiled statement (cached, unlike .values(rows)).
            for rid, env, entry_id, sched, attempt in conn.execute(self._claim_stmt, rows):
                got[(env, entry_id, float(sched), int(attempt))] = int(rid)
        return [got.get((c.env, c.entry_id, c.scheduled_for, c.attempt)) for c in claims]

    def probe_write(self) -> str | None:
        """Whether the run log takes writes now (a read-only SQLite file answers reads):
        an UPDATE of no row, rolled back. None if it does, else the error's first line."""
        try:
            with self.engine.connect() as conn:
                conn.execute(runs.update().where(runs.c.id == -1).values(status=runs.c.status))
                conn.rollback()
        except sa.exc.SQLAlchemyError as exc:
            lines = str(exc).strip().splitlines()
            return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
        return None

    def record_missed(self, claims: Sequence[tuple[Claim, str]], owner: str | None) -> int:
        """Firings that could not be claimed, as `missed` rows with their reason; a
        firing some instance did claim keeps its row (ON CONFLICT DO NOTHING). Returns
        how many rows were written."""
        if not claims:
            return 0
        now = time.time()
        rows = [
            {**c.row(), "status": "missed", "owner": owner, "reason": why, "finished_at": now}
            for c, why in claims
        ]
        with self.engine.begin() as conn:
            return len(list(conn.execute(self._claim_stmt, rows)))

    # -- the writer: batched writes after a run started ------------------------------

    def finish_later(
        self,
        run_id: int,
        status: str,
        exit_code: int | None,
        stdout: str | None,
        stderr: str | None,
        reason: str | None,
        started_at: float | None,
        finished_at: float,
        http_status: int | None = None,
        duration: float | None = None,
    ) -> None:
        row: tuple[Any, ...] = (status, exit_code, stdout, stderr, reason, http_status)
        row += (duration, started_at, finished_at, run_id)
        self._enqueue("finish", row)

    def started_later(self, run_ids: Sequence[int], at: float) -> None:
        """Claimed runs were handed over at `at`: they become `running` (one queued
        write for the whole firing step). A run that already finished keeps its status."""
        if run_ids:
            self._enqueue("start", (at, run_ids))

    def trim_later(self, env: str, entry_id: str, keep: int) -> None:
        self._enqueue("trim", (env, entry_id, keep))

    def skip(self, run_ids: Sequence[tuple[int, str]]) -> None:
        """Our claimed runs that did not start (the previous one is still running)."""
        if run_ids:
            now = time.time()
            with self.engine.begin() as conn:
                conn.execute(
                    runs.update()
                    .where((runs.c.id == sa.bindparam("rid")) & runs.c.status.in_(NOT_STARTED))
                    .values(
                        status="skipped",
                        reason=sa.bindparam("why"),
                        started_at=None,
                        finished_at=now,
                    ),
                    [{"rid": rid, "why": why} for rid, why in run_ids],
                )

    def unclaim(self, run_ids: Sequence[int]) -> None:
        """Give back our claims of firings that will not happen (the entry went away, or
        was paused, before the hand-over): the row goes, as if it had never been claimed."""
        if run_ids:
            with self.engine.begin() as conn:
                conn.execute(
                    runs.delete().where(
                        runs.c.id.in_(list(run_ids)) & runs.c.status.in_(NOT_STARTED)
                    )
                )

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every write queued so far is committed. True if it was. (A marker
        goes through the queue: writers never take a lock to count their writes.)"""
        if self._writer is None:
            return True
        done = threading.Event()
        self._writes.put(("flush", done))
        return done.wait(timeout)

    def _enqueue(self, kind: str, args: Any) -> None:
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_loop, name="runlog-writer", daemon=True
                    )
                    self._writer.start()
        self._writes.put((kind, args))

    def _write_loop(self) -> None:
        while True:
            batch = [self._writes.get()]  # blocks: no wake-ups while nothing happens
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self._writes.get_nowait())
                except queue.Empty:
                    break
            self._commit([item for item in batch if item[0] != "flush"])
            for kind, args in batch:
                if kind == "flush":
                    args.set()

    def _commit(self, batch: list[tuple[str, Any]]) -> None:
        """One transaction for the batch; if it keeps failing (a locked or broken
        database), each write alone, so that one bad write does not sink the others."""
        deadline = time.monotonic() + OUTAGE_PATIENCE
        failures = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    self._write(conn, batch)
                return
            except sa.exc.OperationalError:
                # The database is down or read-only: the writes wait for it (a finish
                # written late beats a run left `running`), up to OUTAGE_PATIENCE.
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.warning("run log: database unavailable; %d writes wait", len(batch))
                if time.monotonic() > deadline:
                    break
                time.sleep(min(1.0, 0.1 * failures))
            except Exception:
                log.exception("run log: a batch of %d writes failed", len(batch))
                failures += 1
                if failures >= 3:
                    break
                time.sleep(0.2 * failures)
        for item in batch:
            try:
                with self.engine.begin() as conn:
                    self._write(conn, [item])
            except Exception:
                log.exception("run log: write %s %r lost", item[0], item[1])

    def _write(self, conn: Connection, batch: list[tuple[str, Any]]) -> None:
        """Plain driver-level `executemany` (the DB-API loops in C): the writer shares
        the GIL with the job workers, so it must be cheap per row."""
        p = self._ph
        starts = [(a[0], rid) for k, a in batch if k == "start" for rid in a[1]]
        if starts:
            conn.exec_driver_sql(
                f"UPDATE runs SET status = 'running', started_at = {p} "
                f"WHERE id = {p} AND status = '{CLAIMED}'",
                starts,
            )
        finishes = [a for k, a in batch if k == "finish"]
        if finishes:
            conn.exec_driver_sql(
                f"UPDATE runs SET status = {p}, exit_code = {p}, stdout = {p}, stderr = {p}, "
                f"reason = {p}, http_status = {p}, duration = {p}, "
                f"started_at = COALESCE({p}, started_at), finished_at = {p} "
                f"WHERE id = {p} AND status IN ('running', '{CLAIMED}')",
                finishes,
            )
        trims = {(a[0], a[1]): a[2] for k, a in batch if k == "trim"}
        for (env, entry_id), keep in trims.items():
            self._trim(conn, env, entry_id, keep)

    def get(self, run_id: int) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        return record(row) if row else None

    def list(
        self,
        env: str | None = None,
        entry_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        q = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        if status != CLAIMED:
            q = q.where(runs.c.status != CLAIMED)
        if env:
            q = q.where(runs.c.env == env)
        if entry_id:
            q = q.where(runs.c.entry_id == entry_id)
        if status:
            q = q.where(runs.c.status == status)
        with self.engine.connect() as conn:
            return [record(r) for r in conn.execute(q)]

    def last_scheduled(self, env: str, entry_id: str) -> float | None:
        """The latest scheduled time this entry was claimed for (any status)."""
        q = sa.select(sa.func.max(runs.c.scheduled_for)).where(
            (runs.c.env == env)
            & (runs.c.entry_id == entry_id)
            & (runs.c.trigger.in_(("schedule", "catch-up", "retry")))
        )
        with self.engine.connect() as conn:
            value = conn.execute(q).scalar()
        return float(value) if value is not None else None

    def interrupt_running(self, owner: str | None = None, reason: str = "") -> int:
        """Runs left `running` (by a crash, or at shutdown) become `interrupted`; claims
        that never started are given back (a catch-up may then run their slot once)."""
        q = runs.update().where(runs.c.status == "running")
        gone = runs.delete().where(runs.c.status == CLAIMED)
        if owner is not None:
            q = q.where(runs.c.owner == owner)
            gone = gone.where(runs.c.owner == owner)
        with self.engine.begin() as conn:
            conn.execute(gone)
            return int(
                conn.execute(
                    q.values(status="interrupted", reason=reason, finished_at=time.time())
                ).rowcount
            )

    @staticmethod
    def _trim(conn: Connection, env: str, entry_id: str, keep: int) -> None:
        """Keep the last `keep` runs of an entry."""
        cutoff = conn.execute(
            sa.select(runs.c.id)
            .where((runs.c.env == env) & (runs.c.entry_id == entry_id))
            .order_by(runs.c.id.desc())
            .offset(keep)
            .limit(1)
        ).scalar()
        if cutoff is not None:
            conn.execute(
                runs.delete().where(
                    (runs.c.env == env)
                    & (runs.c.entry_id == entry_id)
                    & (runs.c.id <= cutoff)
                    & (runs.c.status != "running")
                )
            )
