"""Run history of scheduled jobs (SQLAlchemy Core, same database as the store).

Each firing is *claimed* by inserting its row before it runs; the unique key
(environment, entry, scheduled time, attempt) makes two scheduler instances sharing one
database run it once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .store import metadata

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repo", sa.String(100), nullable=False),
    sa.Column("env", sa.String(100), nullable=False),
    sa.Column("entry_id", sa.String(64), nullable=False),
    sa.Column("line", sa.Integer, nullable=True),
    sa.Column("schedule", sa.String(200), nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("scheduled_for", sa.Float, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("stdout", sa.Text, nullable=True),
    sa.Column("stderr", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("owner", sa.String(64), nullable=True),  # scheduler instance that claimed it
    sa.UniqueConstraint("env", "entry_id", "scheduled_for", "attempt", name="uq_run_claim"),
    sa.Index("ix_runs_env_entry", "env", "entry_id", "id"),
)

FINAL = (
    "succeeded",
    "failed",
    "timed_out",
    "skipped",
    "missed",
    "cancelled",
    "interrupted",
    "error",
)


@dataclass(frozen=True)
class RunRecord:
    id: int
    repo: str
    env: str
    entry_id: str
    line: int | None
    schedule: str
    command: str
    trigger: str
    scheduled_for: float
    attempt: int
    started_at: float | None
    finished_at: float | None
    status: str
    exit_code: int | None
    stdout: str | None
    stderr: str | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _record(row: Any) -> RunRecord:
    m = row._mapping
    return RunRecord(**{k: m[k] for k in RunRecord.__dataclass_fields__})


class RunLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, tables=[runs])

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

    def finish(
        self,
        run_id: int,
        status: str,
        exit_code: int | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        reason: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                runs.update()
                .where((runs.c.id == run_id) & (runs.c.status == "running"))
                .values(
                    status=status,
                    exit_code=exit_code,
                    stdout=stdout,
                    stderr=stderr,
                    reason=reason,
                    finished_at=time.time(),
                )
            )

    def get(self, run_id: int) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        return _record(row) if row else None

    def list(
        self,
        env: str | None = None,
        entry_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        q = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        if env:
            q = q.where(runs.c.env == env)
        if entry_id:
            q = q.where(runs.c.entry_id == entry_id)
        if status:
            q = q.where(runs.c.status == status)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]

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
        """Runs left `running` (by a crash, or at shutdown) become `interrupted`."""
        q = runs.update().where(runs.c.status == "running")
        if owner is not None:
            q = q.where(runs.c.owner == owner)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    q.values(status="interrupted", reason=reason, finished_at=time.time())
                ).rowcount
            )

    def trim(self, env: str, entry_id: str, keep: int) -> None:
        """Keep the last `keep` runs of an entry."""
        with self.engine.begin() as conn:
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
