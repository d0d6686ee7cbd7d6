"""cronie parity: fields are separated by spaces and tabs only, `~` random ranges, ranges
ending at Sunday, and the dashboard's next times to the second for sub-minute entries."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from reconciler.core.crontab import explain, next_fire, parse_crontab
from reconciler.core.errors import SpecErrors
from reconciler.http.dashboard.format import localtime

from .test_dashboard import ENV, Start, get, start  # noqa: F401 - `start` is a fixture


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\u00a0", "U+00A0 (NO-BREAK SPACE)"),
        ("\u2003", "U+2003 (EM SPACE)"),
        ("\u3000", "U+3000 (IDEOGRAPHIC SPACE)"),
        ("\u0085", "U+0085 (NEXT LINE)"),
    ],
)
def test_unicode_whitespace_is_not_a_field_separator(char: str, name: str) -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_crontab(f"0{char}0 * * * * echo hi\n")
    text = str(caught.value)
    assert ".hoody/crontab:1: minute:" in text
    assert name in text and "only with spaces and tabs" in text


def test_unicode_whitespace_inside_the_command_is_kept() -> None:
    (entry,) = parse_crontab("0 0 * * * echo a\u00a0b\n").entries
    assert entry.command == "echo a\u00a0b"


def test_tabs_and_spaces_still_separate() -> None:
    (entry,) = parse_crontab("0\t0  *\t* *\techo hi\n").entries
    assert entry.schedule == "0 0 * * *" and entry.command == "echo hi"


def test_random_range_is_picked_once_and_stably_per_entry() -> None:
    text = "0~30 * * * * echo a\n~ 3~5 * * * echo b\n"
    first = parse_crontab(text).entries
    again = parse_crontab(text).entries
    assert [e.schedule for e in first] == [e.schedule for e in again]
    minute = int(first[0].schedule.split()[0])
    assert 0 <= minute <= 30
    b_minute, b_hour = (int(x) for x in first[1].schedule.split()[:2])
    assert 0 <= b_minute <= 59 and 3 <= b_hour <= 5
    assert first[0].raw_schedule == "0~30 * * * *"
    fire = next_fire(first[0], datetime(2026, 1, 1, tzinfo=UTC))
    assert fire == datetime(2026, 1, 1, 0, minute, tzinfo=UTC) or minute == 0
    assert f"minute {minute} for 0~30" in explain(first[0])


def test_random_picks_differ_between_entries() -> None:
    text = "".join(f"~ * * * * echo {i}\n" for i in range(40))
    picks = {e.schedule for e in parse_crontab(text).entries}
    assert len(picks) > 10


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("5~5 * * * * x", "minute: random range '5~5': the first value must be lower"),
        ("0~30/5 * * * * x", "minute: '0~30/5': a random range takes no step"),
        ("0~99 * * * * x", "minute: 99 is out of range 0-59"),
    ],
)
def test_bad_random_ranges_name_the_field(line: str, message: str) -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_crontab(line + "\n")
    assert message in str(caught.value)


@pytest.mark.parametrize("dow", ["FRI-SUN", "Mon-Sun", "5-0"])
def test_a_range_ending_at_sunday_ends_at_7(dow: str) -> None:
    (entry,) = parse_crontab(f"0 0 * * {dow} x\n").entries
    # 2026-01-04 is a Sunday: the range includes it
    assert next_fire(entry, datetime(2026, 1, 3, 1, tzinfo=UTC)) == datetime(2026, 1, 4, tzinfo=UTC)


def test_a_sixth_field_is_still_rejected() -> None:
    with pytest.raises(SpecErrors, match="6 schedule fields"):
        parse_crontab("0 0 * * * 2025 cmd\n")


def test_next_times_show_seconds_only_when_asked() -> None:
    t = "2026-01-07T00:39:30+00:00"
    assert localtime(t) == "Wed 07 Jan 00:39 UTC"
    assert localtime(t, True) == "Wed 07 Jan 00:39:30 UTC"


def test_dashboard_shows_seconds_for_an_entry_firing_more_than_once_a_minute(
    start: Start,  # noqa: F811 - the fixture imported above
) -> None:
    live = start(crontab="@every 30s echo often\n@hourly echo rarely\n")
    html = get(live, f"/environments/{ENV}").text
    entries = re.findall(r'<article class="entry".*?</article>', html, re.S)
    often = next(e for e in entries if "echo often" in e)
    rarely = next(e for e in entries if "echo rarely" in e)
    shown = re.findall(r'class="next-time"[^>]*>([^<]+)<', often)
    assert len(shown) == 3 and len(set(shown)) == 3, shown  # not "00:39, 00:39"
    assert all(re.search(r"\d\d:\d\d:\d\d ", t) for t in shown), shown
    assert all(
        re.search(r" \d\d:\d\d UTC$", t)
        for t in re.findall(r'class="next-time"[^>]*>([^<]+)<', rarely)
    )
