"""Durable state: events, environment status, webhook deliveries (SQLAlchemy Core).

SQLite by default (WAL, so `hoody events` can read while `hoody serve` writes); the
schema sticks to portable types so PostgreSQL can follow. What exists is never stored
here — that is rebuilt from runtime labels — only what happened and what we decided.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from reconciler.core.errors import ConfigError
from reconciler.storage.runlog import RunLog
from reconciler.storage.schema import (
    deliveries,
    environments,
    events,
    managed_entries,
    pull_requests,
    suspensions,
    upgrade,
)

log = logging.getLogger(__name__)
DELIVERY_MEMORY = 7 * 86400  # seconds of delivery ids kept in memory for dedupe


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
    updated_at: float = 0.0

    @property
    def open(self) -> bool:
        return self.state == "open"


@dataclass(frozen=True)
class Event:
    id: int
    ts: float
    repo: str
    env: str | None
    kind: str
    level: str
    message: str
    details: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "repo": self.repo,
            "env": self.env,
            "kind": self.kind,
            "level": self.level,
            "message": self.message,
            "details": dict(self.details),
        }


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # postgres:// and postgresql:// mean the driver we ship for it (psycopg 3), not
    # SQLAlchemy's default psycopg2.
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except ImportError as e:
        raise ConfigError(
            "database.url",
            f"{e}: PostgreSQL needs the psycopg driver (pip install 'hoody-reconciler[postgres]')",
        ) from e


class Store:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        upgrade(self.engine)
        self._recent: set[tuple[str, str]] | None = None
        self._deliveries_lock = threading.Lock()
        self._delivery_writes: queue.Queue[tuple[str, str, float]] = queue.Queue()
        threading.Thread(target=self._write_deliveries, name="deliveries", daemon=True).start()
        self.runs = RunLog(self.engine)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- events ------------------------------------------------------------------------

    def add_event(
        self,
        repo: str,
        env: str | None,
        kind: str,
        message: str,
        level: str = "info",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                events.insert().values(
                    ts=time.time(),
                    repo=repo,
                    env=env,
                    kind=kind,
                    level=level,
                    message=message,
                    details=json.dumps(dict(details or {}), default=str),
                )
            )

    def events(
        self,
        env: str | None = None,
        repo: str | None = None,
        limit: int = 100,
        kind: str | None = None,
    ) -> list[Event]:
        q = sa.select(events).order_by(events.c.id.desc()).limit(limit)
        if env:
            q = q.where(events.c.env == env)
        if repo:
            q = q.where(events.c.repo == repo)
        if kind:
            q = q.where(events.c.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(q).fetchall()
        return [
            Event(
                r.id, r.ts, r.repo, r.env, r.kind, r.level, r.message, json.loads(r.details or "{}")
            )
            for r in rows
        ]

    # -- environment status ------------------------------------------------------------

    def set_status(self, name: str, repo: str, status: str, **fields: Any) -> None:
        values = {"status": status, "updated_at": time.time(), **fields}
        row = (environments.c.repo == repo) & (environments.c.name == name)
        with self._tx() as conn:
            done = conn.execute(environments.update().where(row).values(**values))
            if done.rowcount == 0:
                conn.execute(environments.insert().values(name=name, repo=repo, **values))

    def forget_environment(self, name: str, repo: str) -> None:
        row = (environments.c.repo == repo) & (environments.c.name == name)
        with self._tx() as conn:
            conn.execute(environments.delete().where(row))

    def environment(self, name: str, repo: str | None = None) -> dict[str, Any] | None:
        """The row of environment `name` (of `repo`). Names are unique across repos on the
        engine; should two rows ever share one (a repo refused the name another holds),
        the one that is not failed wins."""
        q = sa.select(environments).where(environments.c.name == name)
        if repo is not None:
            q = q.where(environments.c.repo == repo)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        rows.sort(key=lambda r: (r["status"] == "failed", -r["updated_at"]))
        return rows[0] if rows else None

    def name_holders(self, names: list[str], repo: str) -> dict[str, dict[str, Any]]:
        """Rows of other repos than `repo` that hold one of `names`."""
        if not names:
            return {}
        q = sa.select(environments).where(
            environments.c.name.in_(names) & (environments.c.repo != repo)
        )
        with self.engine.connect() as conn:
            return {r.name: dict(r._mapping) for r in conn.execute(q)}

    def environments(self, repo: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(environments).order_by(environments.c.name, environments.c.repo)
        if repo:
            q = q.where(environments.c.repo == repo)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # -- suspensions -------------------------------------------------------------------

    def suspend(self, env: str, reason: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(suspensions.delete().where(suspensions.c.env == env))
            conn.execute(suspensions.insert().values(env=env, since=time.time(), reason=reason))

    def resume(self, env: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(suspensions.delete().where(suspensions.c.env == env)).rowcount)

    def suspended(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r.env for r in conn.execute(sa.select(suspensions.c.env))}

    # -- pull requests -----------------------------------------------------------------

    def record_pull_request(self, repo: str, pr: PullRequestState) -> None:
        values = {
            "state": pr.state,
            "action": pr.action,
            "head_ref": pr.head_ref,
            "is_fork": pr.is_fork,
            "draft": pr.draft,
            "labels": json.dumps(list(pr.labels)),
            "updated_at": pr.updated_at or time.time(),
        }
        with self._tx() as conn:
            done = conn.execute(
                pull_requests.update()
                .where((pull_requests.c.repo == repo) & (pull_requests.c.number == pr.number))
                .values(**values)
            )
            if done.rowcount == 0:
                conn.execute(pull_requests.insert().values(repo=repo, number=pr.number, **values))

    def pull_requests(self, repo: str) -> dict[int, PullRequestState]:
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
            )
            for r in rows
        }

    # -- managed cron entries ---------------------------------------------------------

    def save_managed_entry(self, row: dict[str, Any]) -> None:
        with self._tx() as conn:
            done = conn.execute(
                managed_entries.update().where(managed_entries.c.id == row["id"]).values(**row)
            )
            if done.rowcount == 0:
                conn.execute(managed_entries.insert().values(created_at=time.time(), **row))

    def delete_managed_entries(self, env: str, entry_id: str | None = None) -> int:
        q = managed_entries.delete().where(managed_entries.c.env == env)
        if entry_id is not None:
            q = q.where(managed_entries.c.id == entry_id)
        with self._tx() as conn:
            return int(conn.execute(q).rowcount)

    def managed_entries(self, env: str) -> list[dict[str, Any]]:
        q = (
            sa.select(managed_entries)
            .where(managed_entries.c.env == env)
            .order_by(managed_entries.c.created_at)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # -- webhook deliveries ------------------------------------------------------------

    def remember_delivery(self, repo: str, delivery_id: str) -> bool:
        """True the first time a delivery id is seen for a repo, False on a redelivery.

        Answered from memory (ids of the last `DELIVERY_MEMORY` seconds are loaded at
        start); the row is written by a background writer in batches, so the webhook
        request path never waits for SQLite's write lock."""
        key = (repo, delivery_id)
        with self._deliveries_lock:
            if self._recent is None:
                self._recent = self._load_recent_deliveries()
            if key in self._recent:
                return False
            self._recent.add(key)
        self._delivery_writes.put((repo, delivery_id, time.time()))
        return True

    def _load_recent_deliveries(self) -> set[tuple[str, str]]:
        since = time.time() - DELIVERY_MEMORY
        q = sa.select(deliveries.c.repo, deliveries.c.delivery_id).where(
            deliveries.c.received_at >= since
        )
        with self.engine.connect() as conn:
            return {(r.repo, r.delivery_id) for r in conn.execute(q)}

    def _write_deliveries(self) -> None:
        while True:
            batch = [self._delivery_writes.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._delivery_writes.get(timeout=0.05))
                except queue.Empty:
                    break
            rows = [{"repo": r, "delivery_id": d, "received_at": t} for r, d, t in batch if r]
            try:
                if rows:
                    with self._tx() as conn:
                        conn.execute(self._insert_ignoring_duplicates(deliveries), rows)
            except Exception:
                log.exception("could not record %d webhook deliveries", len(rows))
            finally:
                for _ in batch:
                    self._delivery_writes.task_done()

    def _insert_ignoring_duplicates(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        return sqlite_insert(table).on_conflict_do_nothing()

    def flush(self) -> None:
        """Wait until every remembered delivery is on disk."""
        self._delivery_writes.join()
