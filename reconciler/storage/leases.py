"""Leases: which replica reconciles which repo, kept in the database the replicas share.

A lease is a row (repo, holder, epoch, expires_at) with its expiry in the database's own
clock, so replicas on hosts whose clocks differ agree on it. A holder renews its leases
every few seconds; anyone may take a lease that has expired, and every change of holder
increments `epoch` (a fencing token: the controller checks it before each step).

Chosen over PostgreSQL advisory locks: a lock on a dedicated connection is released by
the server only when it sees the connection dead, which after a network partition is when
TCP keepalive gives up, and the holder has no way to know from its side when that is. A
lease's holder knows: it stops once `ttl` minus one renew interval has passed since the
last renew that succeeded, before the row can expire for anybody else. Leases also work
unchanged on SQLite (one replica), and every replica can list who leads what.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from reconciler.storage.schema import leases, replicas, wakeups


@dataclass(frozen=True)
class Lease:
    repo: str
    holder: str
    epoch: int
    expires_at: float  # database time


def db_now(dialect: str) -> Any:
    """The database's clock in seconds since the epoch, as an SQL expression."""
    if dialect == "postgresql":
        return sa.literal_column("EXTRACT(EPOCH FROM clock_timestamp())::float8")
    return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)")


class Leases:
    def __init__(self, engine: sa.Engine, holder: str, ttl: float) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = ttl
        dialect = engine.dialect.name
        self._now = db_now(dialect)
        self._insert = pg_insert if dialect == "postgresql" else sqlite_insert

    def now(self) -> float:
        with self.engine.connect() as conn:
            return float(conn.execute(sa.select(self._now)).scalar_one())

    def heartbeat(
        self, address: str | None = None, schedule_entries: int | None = None
    ) -> list[str]:
        """Record this replica as alive (with where it answers and how many cron entries
        it schedules); return the replicas seen within `ttl` (this one included), and
        forget those not seen for a day."""
        now = self._now
        mine = {"address": address, "schedule_entries": schedule_entries}
        stmt = self._insert(replicas).values(id=self.holder, seen_at=now, started_at=now, **mine)
        stmt = stmt.on_conflict_do_update(
            index_elements=[replicas.c.id], set_={"seen_at": now, **mine}
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            conn.execute(replicas.delete().where(replicas.c.seen_at < now - 86400.0))
            rows = conn.execute(
                sa.select(replicas.c.id)
                .where(replicas.c.seen_at >= now - self.ttl)
                .order_by(replicas.c.id)
            )
            return [r.id for r in rows]

    def schedule_entries(self) -> int:
        """The cron entries scheduled by the live replicas together (each environment's
        schedule runs on one replica: the one leading its repo)."""
        total = sa.func.coalesce(sa.func.sum(replicas.c.schedule_entries), 0)
        with self.engine.connect() as conn:
            query = sa.select(total).where(replicas.c.seen_at >= self._now - self.ttl)
            return int(conn.execute(query).scalar_one())

    def acquire(self, repo: str) -> int | None:
        """Take `repo`'s lease if it is free, expired or already ours (then it is renewed);
        return its epoch, or None when another replica holds it."""
        now = self._now
        mine = leases.c.holder == self.holder
        insert = self._insert(leases).values(
            repo=repo, holder=self.holder, epoch=1, expires_at=now + self.ttl
        )
        stmt = insert.on_conflict_do_update(
            index_elements=[leases.c.repo],
            set_={
                "holder": self.holder,
                "expires_at": now + self.ttl,
                "epoch": sa.case((mine, leases.c.epoch), else_=leases.c.epoch + 1),
            },
            where=sa.or_(mine, leases.c.expires_at < now),
        ).returning(leases.c.epoch)
        with self.engine.begin() as conn:
            epoch = conn.execute(stmt).scalar()
        return int(epoch) if epoch is not None else None

    def renew(self, repos: Iterable[str]) -> dict[str, int]:
        """Extend the leases of `repos` that are still ours; returns them with their epoch.
        A lease that expired but that nobody took is still ours (its epoch unchanged)."""
        names = list(repos)
        if not names:
            return {}
        stmt = (
            leases.update()
            .where(leases.c.holder == self.holder, leases.c.repo.in_(names))
            .values(expires_at=self._now + self.ttl)
            .returning(leases.c.repo, leases.c.epoch)
        )
        with self.engine.begin() as conn:
            return {r.repo: int(r.epoch) for r in conn.execute(stmt)}

    def release(self, repos: Iterable[str]) -> None:
        """Give leases up at once (a clean stop, or more than this replica's share)."""
        names = list(repos)
        if not names:
            return
        with self.engine.begin() as conn:
            conn.execute(
                leases.update()
                .where(leases.c.holder == self.holder, leases.c.repo.in_(names))
                .values(expires_at=0.0)
            )

    def leave(self) -> None:
        """A clean stop: no longer counted among the live replicas (their shares grow)."""
        with self.engine.begin() as conn:
            conn.execute(replicas.delete().where(replicas.c.id == self.holder))

    def all(self) -> list[Lease]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(leases).order_by(leases.c.repo))
            return [Lease(r.repo, r.holder, int(r.epoch), float(r.expires_at)) for r in rows]

    def replicas(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(replicas, self._now.label("now")).order_by(replicas.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    # -- wake-ups: "look at repo X", for whichever replica leads X ------------------------

    def wake(self, repo: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(wakeups.insert().values(repo=repo, at=self._now, reason=reason[:100]))

    def wakeups_after(self, after: int, repos: Iterable[str]) -> tuple[int, set[str]]:
        """The repos among `repos` woken since wake-up id `after`, and the newest id seen
        (of any repo, so the next call starts after it). Rows older than an hour go."""
        names = list(repos)
        with self.engine.begin() as conn:
            newest = conn.execute(sa.select(sa.func.max(wakeups.c.id))).scalar() or 0
            woken: set[str] = set()
            if names and newest > after:
                rows = conn.execute(
                    sa.select(wakeups.c.repo)
                    .where(wakeups.c.id > after, wakeups.c.id <= newest)
                    .where(wakeups.c.repo.in_(names))
                    .distinct()
                )
                woken = {r.repo for r in rows}
            conn.execute(wakeups.delete().where(wakeups.c.at < self._now - 3600.0))
        return int(newest), woken
