"""After downtime: the latest missed slot is found directly (catch-up or one `missed`
row), however long the service was down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.core.crontab import next_fire, parse_crontab
from reconciler.cron.scheduler import last_fire
from reconciler.storage.store import Store

from .scheduler_helpers import Clock, make, target


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(database_url)


def _down(store: Store, crontab: str, first: str, back: str, deadline: float) -> list:
    """Fire `crontab` once at `first`, then start a new scheduler at `back`."""
    clock = Clock(first)
    s, _ = make(store, clock)
    tab = parse_crontab(crontab)
    s.replace("e", target(), tab)
    first_slot = s.next_wakeup()
    assert first_slot is not None
    clock.t = first_slot
    s.run_due(first_slot)
    s.wait_idle()
    assert len(store.runs.list(env="e")) == 1
    clock.set(back)
    s2, _ = make(store, clock)
    s2.replace("e", target(starting_deadline=deadline), tab)
    s2.wait_idle()
    return [r for r in store.runs.list(env="e", limit=10) if r.trigger != "schedule" or r.reason]


def test_every_second_after_two_days_down_records_the_latest_slot_missed(store: Store) -> None:
    back = datetime(2026, 1, 3, 10, 0, 0, 600000, tzinfo=UTC)
    (missed,) = _down(
        store, "@every 1s tick\n", "2026-01-01T10:00:00", back.isoformat()[:-6], deadline=0.5
    )
    assert missed.status == "missed"
    assert missed.scheduled_for == (back - timedelta(seconds=0.6)).timestamp()


def test_every_second_after_two_days_down_catches_up_the_latest_slot(store: Store) -> None:
    back = datetime(2026, 1, 3, 10, 0, 0, 600000, tzinfo=UTC)
    (catch,) = _down(
        store, "@every 1s tick\n", "2026-01-01T10:00:00", back.isoformat()[:-6], deadline=60
    )
    assert (catch.trigger, catch.status) == ("catch-up", "succeeded")
    assert catch.scheduled_for == (back - timedelta(seconds=0.6)).timestamp()


def test_every_minute_after_a_hundred_days_down_records_the_latest_minute(store: Store) -> None:
    (missed,) = _down(
        store, "* * * * * tick\n", "2026-01-01T10:00:00", "2026-04-11T10:00:30", deadline=10
    )
    assert missed.status == "missed"
    assert missed.scheduled_for == datetime(2026, 4, 11, 10, 0, tzinfo=UTC).timestamp()


SCHEDULES = [
    "* * * * *",
    "*/7 * * * *",
    "30 2 * * *",  # skipped or doubled on DST days
    "0 3 * * 0",
    "15 1,2,3 * * *",
    "0 0 29 2 *",
    "59 23 31 * *",
    "*/15 2 * 3,10 *",
    "@every 7s",
    "@every 90s",
    "@every 1h",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@settings(max_examples=300, deadline=None)
@example("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), 1440)  # skipped
@example("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC), 1440)  # twice
@example("* * * * *", "Europe/Berlin", datetime(2026, 10, 25, 0, 10, tzinfo=UTC), 55)  # in fold
@example("* * * * *", "Australia/Lord_Howe", datetime(2026, 4, 4, 14, 50, tzinfo=UTC), 30)
@given(
    schedule=st.sampled_from(SCHEDULES),
    zone=st.sampled_from(ZONES),
    after=st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC)),
    minutes=st.integers(0, 3 * 1440),
)
def test_the_latest_slot_is_the_last_one_a_walk_from_the_start_reaches(
    schedule: str, zone: str, after: datetime, minutes: int
) -> None:
    (entry,) = parse_crontab(f"CRON_TZ={zone}\n{schedule} job\n").entries
    upto = after + timedelta(minutes=minutes, seconds=after.second % 7)
    walked, t = None, after
    while (n := next_fire(entry, t)) is not None and n <= upto:
        walked, t = n, n
    assert last_fire(entry, after, upto) == walked
