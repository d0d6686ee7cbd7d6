"""Durable state: events, environment status, webhook deliveries (SQLAlchemy Core).

SQLite by default (WAL, so `hoody events` can read while `hoody serve` writes); the
schema sticks to portable types so PostgreSQL can follow. What exists is never stored
here — that is rebuilt from runtime labels — only what happened and what we decided.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
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
from reconciler.core.settings import RetentionSettings
from reconciler.storage.deliveries import DeliveryLog, PullRequestState
from reconciler.storage.migrate import migrate
from reconciler.storage.runlog import RunLog
from reconciler.storage.schema import (
    config_values,
    environments,
    events,
    managed_entries,
    suspensions,
)
from reconciler.storage.shared_deliveries import SharedDeliveryLog

__all__ = ["Event", "PullRequestState", "Store", "make_engine"]

log = logging.getLogger(__name__)


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
    def __init__(self, url: str, retention: RetentionSettings | None = None) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        migrate(self.engine)
        self.retention = retention or RetentionSettings()
        shared = self.engine.dialect.name == "postgresql"  # replicas may share it
        self.deliveries = (SharedDeliveryLog if shared else DeliveryLog)(
            self.engine, self.retention, self._insert_ignoring_duplicates, [self.prune_events]
        )
        self.runs = RunLog(self.engine)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        """Write what is queued, stop the writer and close the connections."""
        self.deliveries.close()
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def hash_key(self, imported: bytes | None = None) -> bytes:
        """The key of spec hashes, one for every replica on this database: the first to
        ask stores it (`imported`, the key an older version kept in `state_dir`, so that
        nothing is redeployed; else a new random one), the others read the same row."""
        query = sa.select(config_values.c.value).where(config_values.c.name == "hash_key")
        with self._tx() as conn:
            if (value := conn.execute(query).scalar()) is not None:
                return bytes.fromhex(value)
            key = imported or secrets.token_bytes(32)
            insert = self._insert_ignoring_duplicates(config_values)
            conn.execute(insert.values(name="hash_key", value=key.hex()))
        with self._tx() as conn:  # whoever inserted first
            return bytes.fromhex(conn.execute(query).scalar_one())

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

    def prune_events(self, now: float | None = None) -> int:
        """Delete events older than `retention.events_max_age` and beyond the newest
        `retention.events_max_count`; returns how many went."""
        now = time.time() if now is None else now
        r = self.retention
        with self._tx() as conn:
            gone = conn.execute(events.delete().where(events.c.ts < now - r.events_max_age))
            count = int(gone.rowcount)
            cutoff = conn.execute(
                sa.select(events.c.id)
                .order_by(events.c.id.desc())
                .offset(r.events_max_count)
                .limit(1)
            ).scalar()
            if cutoff is not None:
                count += int(conn.execute(events.delete().where(events.c.id <= cutoff)).rowcount)
        return count

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

    # -- pull requests (webhook state; see deliveries.py) -----------------------------

    def record_pull_request(self, repo: str, pr: PullRequestState) -> bool:
        """Keep `pr` unless the recorded state is newer; False when it was stale."""
        return self.deliveries.record(repo, pr)

    def pull_requests(self, repo: str) -> dict[int, PullRequestState]:
        return self.deliveries.pull_requests(repo)

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
        """True the first time a delivery key is seen for a repo, False on a redelivery
        (answered from memory; written in the background)."""
        return self.deliveries.remember(repo, delivery_id)

    def _insert_ignoring_duplicates(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        return sqlite_insert(table).on_conflict_do_nothing()

    def flush(self) -> None:
        """Wait until every remembered delivery and recorded PR state is on disk."""
        self.deliveries.flush()
