"""The run log's rows as values: a run as read back (`RunRecord`), a firing to claim
(`Claim`), and the statuses. Apart from `runlog.py` so that the log's queries and its
writer stay one module of their own size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLAIMED = "claimed"  # transient: a firing claimed ahead of its instant, not started yet
# The rows of firings of ours whose job has not begun: claimed ahead, or claimed `running`
# at once (manual, reboot, catch-up) and stopped before the hand-over.
NOT_STARTED = (CLAIMED, "running")
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
    http_status: int | None = None  # an HTTP job's last response status
    duration: float | None = None  # seconds the job ran (an HTTP job: all its attempts)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def record(row: Any) -> RunRecord:
    m = row._mapping
    return RunRecord(**{k: m.get(k) for k in RunRecord.__dataclass_fields__})


@dataclass(frozen=True)
class Claim:
    """One firing to claim: the run row's identity and what it records."""

    repo: str
    env: str
    entry_id: str
    line: int | None
    schedule: str
    command: str
    trigger: str
    scheduled_for: float
    attempt: int
    planned_start: float  # started_at until the finish records the real start

    def row(self) -> dict[str, Any]:
        """The run row's own columns (status, owner and times are the caller's)."""
        return {
            "repo": self.repo,
            "env": self.env,
            "entry_id": self.entry_id,
            "line": self.line,
            "schedule": self.schedule,
            "command": self.command,
            "trigger": self.trigger,
            "scheduled_for": self.scheduled_for,
            "attempt": self.attempt,
        }
