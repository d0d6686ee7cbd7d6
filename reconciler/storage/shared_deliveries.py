"""The delivery log when several replicas share one PostgreSQL database.

A provider may deliver a webhook, or its retry, to any replica, and only one of them leads
the repo. So here the table is the truth, not each replica's memory:

- A delivery key is claimed by inserting its row (an upsert that only takes over a row
  older than the dedupe window, `... RETURNING`): the unique (repo, delivery_id) row
  decides which replica takes a delivery that reached two of them. Released (the delivery
  could not be queued, the answer is 503) by deleting the rows it inserted, so the
  provider's retry is taken on whichever replica it lands.
  No memory in front: another replica's release must be seen at once. The table is
  bounded by the writer's prune (age and count), as on SQLite.
- A pull request's state is written before the delivery is answered, by an upsert whose
  `WHERE` keeps the newer payload timestamp: the database orders states that reached
  different replicas. Every read asks the table, so the leader's pass sees a state that a
  webhook wrote on another replica.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from reconciler.storage.deliveries import DeliveryLog, PullRequestState, pr_row
from reconciler.storage.schema import deliveries, pull_requests


class SharedDeliveryLog(DeliveryLog):
    def claim(self, repo: str, keys: Iterable[str]) -> bool:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return True
        now = time.time()
        rows = insert(deliveries).values(
            [{"repo": repo, "delivery_id": k, "received_at": now} for k in wanted]
        )
        stmt = rows.on_conflict_do_update(  # a row older than the window is not a duplicate
            index_elements=["repo", "delivery_id"],
            set_={"received_at": rows.excluded.received_at},
            where=deliveries.c.received_at < now - self.retention.deliveries_max_age,
        ).returning(deliveries.c.delivery_id)
        with self.engine.begin() as conn:
            taken = {r[0] for r in conn.execute(stmt)}
            if len(taken) == len(wanted):
                return True
            if taken:
                conn.execute(self._delete(repo, taken))  # another replica holds one of them
        return False

    def release(self, repo: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            with self.engine.begin() as conn:
                conn.execute(self._delete(repo, keys))

    def confirm(self, repo: str, keys: Iterable[str]) -> None:
        """Nothing to write: the claim inserted the rows."""

    def record(self, repo: str, pr: PullRequestState) -> bool:
        stmt = insert(pull_requests).values(pr_row(repo, pr))
        held, new = pull_requests.c.event_at, stmt.excluded.event_at
        keep = {c: stmt.excluded[c] for c in pr_row(repo, pr) if c not in ("repo", "number")}
        upsert = stmt.on_conflict_do_update(
            index_elements=["repo", "number"],
            set_=keep,
            where=sa.or_(held.is_(None), sa.and_(new.is_not(None), new >= held)),
        ).returning(pull_requests.c.number)
        with self.engine.begin() as conn:
            return conn.execute(upsert).first() is not None

    def pull_requests(self, repo: str) -> dict[int, PullRequestState]:
        return self._load(repo)

    def _delete(self, repo: str, keys: Iterable[str]) -> Any:
        return deliveries.delete().where(
            deliveries.c.repo == repo, deliveries.c.delivery_id.in_(list(keys))
        )
