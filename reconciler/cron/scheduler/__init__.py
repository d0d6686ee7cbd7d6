"""Each environment's crontab, run inside this process.

`Scheduler` (in `facade`) is the whole interface; its parts, one job each:
`tables` (the tables, their entry states and the one lock), `timer` (when: the heap of
fire times, the adaptive claim lead), `firing` (one firing from claim to end),
`handover` (an instant's claimed firings, waiting, then handed to the pool),
`execution` (a job on a worker: timeout, retries, pause), `recovery` (manual runs,
`@reboot`, catch-up after downtime)."""

from reconciler.cron.scheduler.clock import Clock, SystemClock
from reconciler.cron.scheduler.execution import Notify, Runner
from reconciler.cron.scheduler.facade import Scheduler
from reconciler.cron.scheduler.handover import SKIP_REASON
from reconciler.cron.scheduler.recovery import last_fire
from reconciler.cron.scheduler.tables import (
    EntryState,
    Table,
    Target,
    jitter_offset,
    replace_user,
    schedule_key,
)
from reconciler.cron.scheduler.timer import MAX_LEAD, HeapItem

__all__ = [
    "MAX_LEAD",
    "SKIP_REASON",
    "Clock",
    "EntryState",
    "HeapItem",
    "Notify",
    "Runner",
    "Scheduler",
    "SystemClock",
    "Table",
    "Target",
    "jitter_offset",
    "last_fire",
    "replace_user",
    "schedule_key",
]
