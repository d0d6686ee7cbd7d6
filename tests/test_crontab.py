from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from reconciler.core.crontab import (
    CronEntry,
    Crontab,
    explain,
    next_fire,
    next_fires,
    parse_crontab,
)
from reconciler.core.errors import SpecErrors

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    """`2025-03-30T01:00` -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def entry(line: str, tz: str = "UTC") -> CronEntry:
    (only,) = parse_crontab(f"CRON_TZ={tz}\n{line}\n").entries
    return only


def fires(line: str, after: str, n: int, tz: str = "UTC") -> list[str]:
    return [f.strftime("%Y-%m-%dT%H:%M") for f in next_fires(entry(line, tz), utc(after), n)]


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        parse_crontab(text)
    return [e.render() for e in info.value.errors]


# --- fields -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "after", "expected"),
    [
        ("*/5 * * * * x", "2025-01-01T00:00", ["2025-01-01T00:05", "2025-01-01T00:10"]),
        ("1-10/4 * * * * x", "2025-01-01T00:00", ["2025-01-01T00:01", "2025-01-01T00:05"]),
        ("0,30 9-10 * * * x", "2025-01-01T00:00", ["2025-01-01T09:00", "2025-01-01T09:30"]),
        ("0 0 * JAN,jul * x", "2025-02-01T00:00", ["2025-07-01T00:00", "2025-07-02T00:00"]),
        ("0 0 1 feb-Apr/2 * x", "2025-01-01T00:00", ["2025-02-01T00:00", "2025-04-01T00:00"]),
        ("0 0 * * 7 x", "2025-10-01T00:00", ["2025-10-05T00:00", "2025-10-12T00:00"]),
        ("0 0 * * 0 x", "2025-10-01T00:00", ["2025-10-05T00:00", "2025-10-12T00:00"]),
        ("0 0 * * sun x", "2025-10-01T00:00", ["2025-10-05T00:00", "2025-10-12T00:00"]),
        ("0 0 * * FRI-7 x", "2025-10-01T00:00", ["2025-10-03T00:00", "2025-10-04T00:00"]),
        ("0 0 * * MON-FRI x", "2025-10-03T00:00", ["2025-10-06T00:00", "2025-10-07T00:00"]),
        ("59 23 31 12 * x", "2025-06-01T00:00", ["2025-12-31T23:59", "2026-12-31T23:59"]),
        ("0 0 29 2 * x", "2025-01-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
        ("* * * * * x", "2025-01-01T00:00:59.5", ["2025-01-01T00:01", "2025-01-01T00:02"]),
        ("0 12 * * * x", "2025-01-01T12:00", ["2025-01-02T12:00"]),  # strictly after
    ],
)
def test_fields(line: str, after: str, expected: list[str]) -> None:
    assert fires(line, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("60 * * * * x", "minute: 60 is out of range 0-59"),
        ("0 24 * * * x", "hour: 24 is out of range 0-23"),
        ("0 0 0 * * x", "day of month: 0 is out of range 1-31"),
        ("0 0 32 * * x", "day of month: 32 is out of range 1-31"),
        ("0 0 * 13 * x", "month: 13 is out of range 1-12"),
        ("0 0 * * 8 x", "day of week: 8 is out of range 0-7"),
        ("*/0 * * * * x", "minute: step '0' in '*/0' must be a whole number of at least 1"),
        ("0 1-5/0 * * * x", "hour: step '0' in '1-5/0' must be a whole number of at least 1"),
        ("5-1 * * * * x", "minute: range 5-1 is reversed; cron ranges do not wrap around"),
        ("0 0 * DEC-JAN * x", "month: range DEC-JAN is reversed"),
        ("0 0 * JANUARY * x", "month: 'JANUARY' is neither a number 1-12 nor a name JAN..DEC"),
        ("0 0 * * MOM x", "day of week: 'MOM' is neither a number 0-7 nor a name SUN..SAT"),
        ("0 MON * * * x", "hour: 'MON' is not a number 0-23"),
        ("5/10 * * * * x", "minute: '5/10': a step needs a range or '*'; write 5-59/10"),
        ("0,,5 * * * * x", "minute: empty list item in '0,,5'"),
        ("0 0 ? * MON x", "day of month: '?' is Quartz syntax; cron writes '*'"),
        ("0 0 L * * x", "day of month: 'L' is Quartz syntax that cron does not have"),
        ("0 0 30 2 * x", "day of month: never fires: February has no day 30"),
        ("0 0 31 4,6 * x", "day of month: never fires: April and June have no day 31"),
        ("0 0 * * * ", "command: missing command after the 5 schedule fields"),
        ("echo hello", "expected 5 schedule fields and a command, or NAME=value"),
    ],
)
def test_field_errors(line: str, message: str) -> None:
    (rendered,) = errors_of(f"{line}\n")
    assert rendered.startswith(f".hoody/crontab:1: {message}")


def test_a_line_with_several_bad_fields_reports_each() -> None:
    assert errors_of("60 24 * * 9 x\n") == [
        ".hoody/crontab:1: minute: 60 is out of range 0-59",
        ".hoody/crontab:1: hour: 24 is out of range 0-23",
        ".hoody/crontab:1: day of week: 9 is out of range 0-7",
    ]


def test_names_are_normalized_but_raw_text_kept() -> None:
    e = entry("0  0 *   jan  mon-fri   cmd  with   spaces")
    assert e.schedule == "0 0 * JAN MON-FRI"
    assert e.raw_schedule == "0 0 * jan mon-fri"
    assert e.command == "cmd  with   spaces"
    assert e.kind == "cron"
    assert e.every is None


def test_lines_may_be_indented_and_comments_ignored() -> None:
    tab = parse_crontab("# header\n\n   \t*/5 * * * * a # not a comment\n  # indented comment\n")
    (e,) = tab.entries
    assert (e.line, e.command) == (3, "a # not a comment")


# --- macros, @every, @reboot --------------------------------------------------------------


@pytest.mark.parametrize(
    ("macro", "schedule", "after", "expected"),
    [
        ("@yearly", "0 0 1 1 *", "2025-03-01T00:00", "2026-01-01T00:00"),
        ("@annually", "0 0 1 1 *", "2025-03-01T00:00", "2026-01-01T00:00"),
        ("@monthly", "0 0 1 * *", "2025-03-05T00:00", "2025-04-01T00:00"),
        ("@weekly", "0 0 * * 0", "2025-10-01T00:00", "2025-10-05T00:00"),
        ("@daily", "0 0 * * *", "2025-03-05T10:00", "2025-03-06T00:00"),
        ("@midnight", "0 0 * * *", "2025-03-05T10:00", "2025-03-06T00:00"),
        ("@hourly", "0 * * * *", "2025-03-05T10:00", "2025-03-05T11:00"),
    ],
)
def test_macros(macro: str, schedule: str, after: str, expected: str) -> None:
    e = entry(f"{macro} run it")
    assert (e.schedule, e.raw_schedule, e.kind, e.command) == (schedule, macro, "cron", "run it")
    assert fires(f"{macro} x", after, 1) == [expected]


def test_macro_and_its_expansion_are_the_same_job() -> None:
    assert entry("@daily backup").id == entry("0 0 * * * backup").id


@pytest.mark.parametrize(
    ("text", "schedule", "seconds"),
    [
        ("30s", "@every 30s", 30.0),
        ("5m", "@every 5m", 300.0),
        ("1h30m", "@every 1h30m", 5400.0),
        ("90m", "@every 1h30m", 5400.0),
        ("1.5h", "@every 1h30m", 5400.0),
        ("1s", "@every 1s", 1.0),
        ("2d", "@every 48h", 172800.0),
        ("1m0.5s", "@every 1m0.5s", 60.5),
    ],
)
def test_every_parses_and_normalizes(text: str, schedule: str, seconds: float) -> None:
    e = entry(f"@every {text} sync now")
    assert (e.kind, e.schedule, e.raw_schedule, e.every) == (
        "every",
        schedule,
        f"@every {text}",
        seconds,
    )
    assert e.command == "sync now"


@pytest.mark.parametrize(
    ("line", "after", "expected"),
    [  # multiples of the interval since 1970-01-01T00:00Z
        ("@every 30s x", "2025-01-01T00:00:10", ["00:00:30", "00:01:00", "00:01:30"]),
        ("@every 30s x", "2025-01-01T00:00:30", ["00:01:00"]),
        ("@every 1h30m x", "2025-01-01T00:00", ["01:30:00", "03:00:00"]),
        ("@every 7m x", "2025-01-01T00:00", ["00:05:00", "00:12:00"]),
    ],
)
def test_every_fires_on_epoch_multiples(line: str, after: str, expected: list[str]) -> None:
    got = next_fires(entry(line, "Europe/Berlin"), utc(after), len(expected))
    assert [f.strftime("%H:%M:%S") for f in got] == expected
    assert all(f.tzinfo is UTC for f in got)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("@every 0s x", "@every: 0s is too short; the minimum is 1s"),
        ("@every 500ms x", "@every: 500ms is too short; the minimum is 1s"),
        ("@every soon x", "@every: 'soon' is not a duration like 30s, 5m or 1h30m"),
        ("@every 1h 30m x", "@every: write the duration without spaces: 1h30m"),
        ("@every 5m", "command: missing command after @every 5m"),
        ("@fortnightly x", "unknown schedule '@fortnightly'; use @yearly"),
        ("@Daily x", "unknown schedule '@Daily'"),
        ("@daily", "command: missing command after @daily"),
    ],
)
def test_macro_errors(line: str, message: str) -> None:
    (rendered,) = errors_of(f"{line}\n")
    assert rendered.startswith(f".hoody/crontab:1: {message}")


def test_reboot() -> None:
    e = entry("@reboot ./warm-cache")
    assert (e.kind, e.schedule, e.raw_schedule, e.every) == ("reboot", "@reboot", "@reboot", None)
    assert next_fire(e, utc("2025-01-01T00:00")) is None
    assert next_fires(e, utc("2025-01-01T00:00"), 3) == []
    assert "starts" in explain(e)


# --- six and seven fields -----------------------------------------------------------------

SIX = (
    "6 schedule fields: the sixth field means seconds to some tools and years to others; "
    "use @every for sub-minute schedules"
)


@pytest.mark.parametrize(
    "line",
    ["*/10 * * * * * ./job", "0 0 12 * * ? ./job", "0 * * * * 5", "0 0 * * * MON-FRI ./x"],
)
def test_six_fields_are_refused_with_the_reason(line: str) -> None:
    assert errors_of(f"{line}\n") == [f".hoody/crontab:1: {SIX}"]


def test_seven_fields_are_refused() -> None:
    (rendered,) = errors_of("0 0 12 * * ? 2025 ./job\n")
    assert rendered.startswith(".hoody/crontab:1: 7 schedule fields:")
    assert "use @every for sub-minute schedules" in rendered


@pytest.mark.parametrize("line", ["0 * * * * /bin/5", "0 * * * * mon --once", "0 * * * * w"])
def test_commands_that_only_resemble_fields_are_fine(line: str) -> None:
    assert entry(line).command == line.split(maxsplit=5)[5]


# --- environment --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("FOO=bar", "bar"),
        ("FOO = bar", "bar"),
        ("FOO=  bar baz  ", "bar baz"),
        ('FOO="bar baz"', "bar baz"),
        ("FOO='bar baz'", "bar baz"),
        ('FOO="it\'s"', "it's"),
        ('FOO="  padded  "', "  padded  "),
        ("FOO=a=b", "a=b"),
        ("FOO=$HOME/x", "$HOME/x"),  # cron does not expand variables
        ("FOO=", ""),
        ('FOO=""', ""),
    ],
)
def test_env_values(line: str, value: str) -> None:
    (e,) = parse_crontab(f"{line}\n* * * * * x\n").entries
    assert dict(e.env) == {"FOO": value}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('FOO="bar', "FOO: unbalanced quotes around the value"),
        ("FOO='bar\"", "FOO: unbalanced quotes around the value"),
        ('FOO="a" b', "FOO: unbalanced quotes around the value"),
        ("1FOO=x", "'1FOO' is not a valid environment variable name"),
        ("SHELL=", "SHELL: must not be empty"),
        ("CRON_TZ=Mars/Olympus", "CRON_TZ: unknown time zone 'Mars/Olympus'"),
        ("CRON_TZ=../etc/passwd", "CRON_TZ: unknown time zone '../etc/passwd'"),
    ],
)
def test_env_errors(line: str, message: str) -> None:
    (rendered,) = errors_of(f"{line}\n* * * * * x\n")
    assert rendered.startswith(f".hoody/crontab:1: {message}")


def test_env_applies_to_the_lines_after_it() -> None:
    tab = parse_crontab("* * * * * first\nA=1\n* * * * * second\nB = 2\nA=3\n* * * * * third\n")
    assert [dict(e.env) for e in tab.entries] == [{}, {"A": "1"}, {"A": "3", "B": "2"}]


def test_shell_and_cron_tz_are_not_env() -> None:
    tab = parse_crontab(
        "* * * * * a\n"
        "SHELL=/bin/bash\n"
        "CRON_TZ=Europe/Berlin\n"
        "PATH=/usr/bin\n"
        "* * * * * b\n"
        "CRON_TZ=America/New_York\n"
        "SHELL='/bin/zsh'\n"
        "* * * * * c\n"
        "CRON_TZ=\n"
        "* * * * * d\n",
        default_timezone="Asia/Tokyo",
    )
    got = [(e.command, e.shell, e.timezone, dict(e.env)) for e in tab.entries]
    assert got == [
        ("a", "/bin/sh", "Asia/Tokyo", {}),
        ("b", "/bin/bash", "Europe/Berlin", {"PATH": "/usr/bin"}),
        ("c", "/bin/zsh", "America/New_York", {"PATH": "/usr/bin"}),
        ("d", "/bin/zsh", "Asia/Tokyo", {"PATH": "/usr/bin"}),  # empty CRON_TZ: default
    ]


def test_cron_tz_changes_when_jobs_fire() -> None:
    tab = parse_crontab("0 9 * * * a\nCRON_TZ=Europe/Berlin\n0 9 * * * b\n")
    after = utc("2025-06-01T00:00")
    assert [next_fire(e, after) for e in tab.entries] == [
        utc("2025-06-01T09:00"),
        utc("2025-06-01T07:00"),  # 09:00 CEST
    ]


def test_bad_default_timezone() -> None:
    with pytest.raises(SpecErrors) as info:
        parse_crontab("* * * * * x\n", default_timezone="Nowhere/Land")
    assert "cron.timezone: unknown time zone 'Nowhere/Land'" in str(info.value)


def test_mailto_is_accepted_with_a_warning() -> None:
    tab = parse_crontab("# notify\n\nMAILTO=ops@example.com\n* * * * * x\n")
    assert tab.warnings == (
        ".hoody/crontab:3: MAILTO is ignored; notifications are configured on the server",
    )
    assert dict(tab.entries[0].env) == {}


def test_tz_warns_that_it_does_not_schedule() -> None:
    tab = parse_crontab("TZ=Europe/Berlin\n* * * * * x\n")
    assert "CRON_TZ" in tab.warnings[0]
    assert dict(tab.entries[0].env) == {"TZ": "Europe/Berlin"}
    assert tab.entries[0].timezone == "UTC"


# --- % ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected_command", "stdin"),
    [
        (r"echo hi", "echo hi", None),
        (r"echo a%b%c", "echo a", "b\nc"),
        (r"date +\%Y-\%m-\%d", "date +%Y-%m-%d", None),
        (r"echo 50\% done", "echo 50% done", None),
        (r"mail -s hi me%line1%line2\%x%", "mail -s hi me", "line1\nline2%x\n"),
        (r"cat %", "cat ", ""),
        (r"printf 'a\nb'", r"printf 'a\nb'", None),  # other backslashes stay
        (r"cat%a\b\\", "cat", "a\\b\\\\"),
        (r"echo \\%rest", "echo \\\\", "rest"),  # an escaped backslash does not escape %
    ],
)
def test_percent(command: str, expected_command: str, stdin: str | None) -> None:
    tab = parse_crontab(f"* * * * * {command}\n")
    (e,) = tab.entries
    assert (e.command, e.stdin) == (expected_command, stdin)
    warned = [w for w in tab.warnings if "unescaped %" in w]
    assert len(warned) == (stdin is not None)


def test_percent_warning_text_once_per_line() -> None:
    tab = parse_crontab("* * * * * a%b%c\n* * * * * date +\\%s\n* * * * * x%y\n")
    assert tab.warnings == (
        ".hoody/crontab:1: unescaped % ends the command; the rest becomes stdin "
        "(write \\% for a literal %)",
        ".hoody/crontab:3: unescaped % ends the command; the rest becomes stdin "
        "(write \\% for a literal %)",
    )


def test_empty_command_before_percent() -> None:
    assert errors_of("* * * * * %input\n") == [
        ".hoody/crontab:1: command: empty command before the %"
    ]


# --- day of month / day of week -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [  # after Monday 2025-09-29 00:00 UTC; Oct 1 is a Wednesday, Nov 1 a Saturday
        ("0 0 1 * MON x", ["10-01", "10-06", "10-13", "10-20", "10-27", "11-01", "11-03"]),
        ("0 0 1-7 * MON x", ["10-01", "10-02", "10-03", "10-04", "10-05", "10-06", "10-07"]),
        ("0 0 13 * FRI x", ["10-03", "10-10", "10-13", "10-17"]),
        ("0 0 */2 * MON x", ["10-13", "10-27", "11-03", "11-17"]),  # */2 starts with *: AND
        ("0 0 1 * */2 x", ["11-01", "01-01"]),  # AND: the 1st and a Sun/Tue/Thu/Sat
        ("0 0 1 * * x", ["10-01", "11-01"]),
        ("0 0 * * MON x", ["10-06", "10-13"]),
        ("0 0 * * * x", ["09-30", "10-01"]),
    ],
)
def test_day_of_month_and_day_of_week(line: str, expected: list[str]) -> None:
    got = fires(line, "2025-09-29T00:00", len(expected))
    assert [g[5:10] for g in got] == expected


# --- daylight saving time -----------------------------------------------------------------

DST = [
    # Europe/Berlin, spring forward 2025-03-30 01:00Z: local 02:00-02:59 does not exist
    ("Europe/Berlin", "30 2 * * *", "2025-03-29T12:00", ["2025-03-30T01:00", "2025-03-31T00:30"]),
    ("Europe/Berlin", "0 2 * * *", "2025-03-29T12:00", ["2025-03-30T01:00", "2025-03-31T00:00"]),
    (
        "Europe/Berlin",
        "0,30 2 * * *",
        "2025-03-29T12:00",
        ["2025-03-30T01:00", "2025-03-31T00:00", "2025-03-31T00:30"],
    ),
    (
        "Europe/Berlin",
        "0 2-3 * * *",
        "2025-03-29T12:00",
        ["2025-03-30T01:00", "2025-03-31T00:00", "2025-03-31T01:00"],
    ),
    ("Europe/Berlin", "0 3 * * *", "2025-03-29T12:00", ["2025-03-30T01:00", "2025-03-31T01:00"]),
    ("Europe/Berlin", "0 2 * * *", "2025-03-30T00:59:30", ["2025-03-30T01:00"]),  # 01:59:30 CET
    ("Europe/Berlin", "30 1 * * *", "2025-03-29T12:00", ["2025-03-30T00:30", "2025-03-30T23:30"]),
    (
        "Europe/Berlin",
        "*/15 * * * *",
        "2025-03-30T00:40",
        ["2025-03-30T00:45", "2025-03-30T01:00", "2025-03-30T01:15"],
    ),
    (
        "Europe/Berlin",
        "30 * * * *",
        "2025-03-29T23:40",
        ["2025-03-30T00:30", "2025-03-30T01:30", "2025-03-30T02:30"],
    ),
    (
        "Europe/Berlin",
        "0 * * * *",
        "2025-03-29T23:30",
        ["2025-03-30T00:00", "2025-03-30T01:00", "2025-03-30T02:00"],
    ),
    ("Europe/Berlin", "* 2 * * *", "2025-03-29T12:00", ["2025-03-31T00:00", "2025-03-31T00:01"]),
    # Europe/Berlin, fall back 2025-10-26 01:00Z: local 02:00-02:59 happens twice
    ("Europe/Berlin", "30 2 * * *", "2025-10-25T12:00", ["2025-10-26T00:30", "2025-10-27T01:30"]),
    ("Europe/Berlin", "0 2 * * *", "2025-10-25T12:00", ["2025-10-26T00:00", "2025-10-27T01:00"]),
    ("Europe/Berlin", "30 2 * * *", "2025-10-26T00:45", ["2025-10-27T01:30"]),
    ("Europe/Berlin", "30 2 * * *", "2025-10-26T01:10", ["2025-10-27T01:30"]),
    (
        "Europe/Berlin",
        "0 1-3 * * *",
        "2025-10-25T12:00",
        ["2025-10-25T23:00", "2025-10-26T00:00", "2025-10-26T02:00"],
    ),
    (
        "Europe/Berlin",
        "*/15 * * * *",
        "2025-10-26T00:40",
        [
            "2025-10-26T00:45",
            "2025-10-26T01:00",
            "2025-10-26T01:15",
            "2025-10-26T01:30",
            "2025-10-26T01:45",
            "2025-10-26T02:00",
        ],
    ),
    (
        "Europe/Berlin",
        "*/15 * * * *",
        "2025-10-26T01:20",
        ["2025-10-26T01:30", "2025-10-26T01:45", "2025-10-26T02:00"],
    ),
    (
        "Europe/Berlin",
        "30 * * * *",
        "2025-10-25T23:45",
        ["2025-10-26T00:30", "2025-10-26T01:30", "2025-10-26T02:30"],
    ),
    (
        "Europe/Berlin",
        "0 * * * *",
        "2025-10-25T23:30",
        ["2025-10-26T00:00", "2025-10-26T01:00", "2025-10-26T02:00"],
    ),
    (
        "Europe/Berlin",
        "* 2 * * *",
        "2025-10-26T00:58",
        ["2025-10-26T00:59", "2025-10-26T01:00", "2025-10-26T01:01"],
    ),
    # America/New_York, spring forward 2025-03-09 07:00Z: local 02:00-02:59 does not exist
    (
        "America/New_York",
        "30 2 * * *",
        "2025-03-08T12:00",
        ["2025-03-09T07:00", "2025-03-10T06:30"],
    ),
    (
        "America/New_York",
        "15 2 * * 0",
        "2025-03-08T12:00",
        ["2025-03-09T07:00", "2025-03-16T06:15"],
    ),
    (
        "America/New_York",
        "30 1 * * *",
        "2025-03-08T12:00",
        ["2025-03-09T06:30", "2025-03-10T05:30"],
    ),
    (
        "America/New_York",
        "*/15 * * * *",
        "2025-03-09T06:40",
        ["2025-03-09T06:45", "2025-03-09T07:00", "2025-03-09T07:15"],
    ),
    (
        "America/New_York",
        "30 * * * *",
        "2025-03-09T06:00",
        ["2025-03-09T06:30", "2025-03-09T07:30"],
    ),
    # America/New_York, fall back 2025-11-02 06:00Z: local 01:00-01:59 happens twice
    (
        "America/New_York",
        "30 1 * * *",
        "2025-11-01T12:00",
        ["2025-11-02T05:30", "2025-11-03T06:30"],
    ),
    ("America/New_York", "0 1 * * *", "2025-11-02T05:30", ["2025-11-03T06:00"]),
    (
        "America/New_York",
        "30 * * * *",
        "2025-11-02T04:00",
        ["2025-11-02T04:30", "2025-11-02T05:30", "2025-11-02T06:30", "2025-11-02T07:30"],
    ),
    (
        "America/New_York",
        "*/20 * * * *",
        "2025-11-02T05:30",
        ["2025-11-02T05:40", "2025-11-02T06:00", "2025-11-02T06:20"],
    ),
]


@pytest.mark.parametrize(("tz", "schedule", "after", "expected"), DST)
def test_daylight_saving_time(tz: str, schedule: str, after: str, expected: list[str]) -> None:
    assert fires(f"{schedule} job", after, len(expected), tz) == expected


def test_results_are_utc_and_after_may_be_in_any_zone() -> None:
    e = entry("30 2 * * * x", "Europe/Berlin")
    after = datetime(2025, 3, 29, 22, 0, tzinfo=NEW_YORK)  # 2025-03-30T02:00Z
    got = next_fire(e, after)
    assert got == utc("2025-03-31T00:30")
    assert got is not None and got.tzinfo is UTC


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire(entry("* * * * * x"), datetime(2025, 1, 1))


# --- errors -------------------------------------------------------------------------------


def test_every_problem_of_a_file_is_reported_at_once_sorted_by_line() -> None:
    text = (
        "# nightly jobs\n"
        "0 3 * * * ./ok\n"
        "0 25 * * * ./bad-hour\n"
        "CRON_TZ=Nowhere/City\n"
        "@every 0s ./too-fast\n"
        "0 3 * * * ./ok-again\n"
        "*/10 * * * * * ./seconds\n"
        "0 0 * * 9 ./bad-dow\n"
    )
    with pytest.raises(SpecErrors) as info:
        parse_crontab(text)
    errors = info.value.errors
    assert [e.line for e in errors] == [3, 4, 5, 7, 8]
    assert [e.field for e in errors] == ["hour", "CRON_TZ", "@every", None, "day of week"]
    assert str(info.value).splitlines() == [e.render() for e in errors]
    assert all(
        line.startswith(f".hoody/crontab:{e.line}: ")
        for line, e in zip(str(info.value).splitlines(), errors, strict=True)
    )


def test_errors_use_the_given_file_name() -> None:
    with pytest.raises(SpecErrors) as info:
        parse_crontab("x\n", file="branch/.hoody/crontab")
    assert str(info.value).startswith("branch/.hoody/crontab:1: ")


# --- identity -----------------------------------------------------------------------------


def ids(text: str) -> dict[str, str]:
    return {e.command: e.id for e in parse_crontab(text).entries}


def test_id_survives_moving_and_reordering_lines() -> None:
    before = ids("0 3 * * * backup\n*/5 * * * * poll\n@every 30s ping\n")
    after = ids("# moved\n\n@every 30s ping\n\n*/5 * * * * poll\n   0 3 * * * backup\n")
    assert before == after


def test_id_changes_with_what_the_job_does() -> None:
    base = ids("0 3 * * * backup\n")["backup"]
    assert ids("0 3 * * * backup --full\n")["backup --full"] != base
    assert ids("0 4 * * * backup\n")["backup"] != base
    assert ids("X=1\n0 3 * * * backup\n")["backup"] != base
    assert ids("CRON_TZ=Europe/Berlin\n0 3 * * * backup\n")["backup"] != base
    assert ids("SHELL=/bin/bash\n0 3 * * * backup\n")["backup"] != base
    assert ids("0 3 * * * backup%input\n")["backup"] != base
    assert ids("0   3 * * *   backup\n")["backup"] == base  # spacing is not meaning
    assert ids("0 3 * * * backup\n")["backup"] == base
    tokyo = parse_crontab("0 3 * * * backup\n", default_timezone="Asia/Tokyo")
    assert tokyo.entries[0].id != base


def test_identical_lines_both_run_with_distinct_ids() -> None:
    tab = parse_crontab("* * * * * x\n* * * * * y\n* * * * * x\n")
    first, _, third = tab.entries
    assert third.id == f"{first.id}-2"
    assert len(tab.by_id()) == 3
    assert tab.warnings == (".hoody/crontab:3: same job as line 1; both run",)


def test_by_id() -> None:
    tab = parse_crontab("@hourly a\n@daily b\n")
    assert isinstance(tab, Crontab)
    assert {e.command for e in tab.by_id().values()} == {"a", "b"}
    assert all(tab.by_id()[e.id] is e for e in tab.entries)
    assert len(tab.entries[0].id) == 12


def test_entries_are_frozen_and_hashable() -> None:
    e = entry("* * * * * x")
    with pytest.raises(AttributeError):
        e.command = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        e.env["A"] = "1"  # type: ignore[index]
    assert hash(e) == hash(entry("* * * * * x"))


# --- explain ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tz", "words"),
    [
        (
            "0 */2 * * 1-5 x",
            "Europe/Berlin",
            "at minute 0 past every 2nd hour, on Monday through Friday (Europe/Berlin)",
        ),
        ("*/15 * * * * x", "UTC", "every 15th minute (UTC)"),
        ("30 * * * * x", "UTC", "at minute 30 past every hour (UTC)"),
        ("0,30 * * * * x", "UTC", "at minutes 0 and 30 past every hour (UTC)"),
        ("* * * * * x", "UTC", "every minute (UTC)"),
        ("* 2 * * * x", "UTC", "every minute of hour 2 (UTC)"),
        ("0 9,17 * * * x", "UTC", "at 09:00 and 17:00 every day (UTC)"),
        ("5 4 * * sun x", "UTC", "at 04:05, on Sunday (UTC)"),
        ("0 0 * * 7 x", "UTC", "at 00:00, on Sunday (UTC)"),
        ("0 0 1 * MON x", "UTC", "at 00:00, on day-of-month 1 or on Monday (UTC)"),
        ("0 0 */2 * MON x", "UTC", "at 00:00, on every 2nd day-of-month if it is Monday (UTC)"),
        ("0 0 1 */3 * x", "UTC", "at 00:00, on day-of-month 1, in every 3rd month (UTC)"),
        ("0 0 * JAN-MAR,DEC * x", "UTC", "at 00:00, in January through March and December (UTC)"),
        ("*/10 9-17 * * * x", "UTC", "every 10th minute past hours 9 through 17 (UTC)"),
        ("@daily x", "UTC", "at 00:00 every day (@daily, UTC)"),
        ("@hourly x", "Asia/Tokyo", "at minute 0 past every hour (@hourly, Asia/Tokyo)"),
        (
            "@every 90m x",
            "UTC",
            "every 1 hour and 30 minutes (at whole multiples of 1h30m since 1970-01-01 00:00 UTC)",
        ),
        (
            "@every 30s x",
            "UTC",
            "every 30 seconds (at whole multiples of 30s since 1970-01-01 00:00 UTC)",
        ),
        ("@reboot x", "UTC", "once, when the environment starts (@reboot)"),
    ],
)
def test_explain(line: str, tz: str, words: str) -> None:
    assert explain(entry(line, tz)) == words


# --- properties ---------------------------------------------------------------------------


def _field(lo: int, hi: int) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    """A random field text in [lo, hi] and the values it allows (computed independently)."""
    value = st.integers(lo, hi)
    star = st.just(("*", frozenset(range(lo, hi + 1))))
    star_step = st.integers(1, hi - lo + 1).map(
        lambda s: (f"*/{s}", frozenset(range(lo, hi + 1, s)))
    )
    single = value.map(lambda v: (str(v), frozenset([v])))
    listed = st.lists(value, min_size=1, max_size=4).map(
        lambda vs: (",".join(map(str, vs)), frozenset(vs))
    )

    @st.composite
    def ranged(draw: st.DrawFn) -> tuple[str, frozenset[int]]:
        a, b = sorted((draw(value), draw(value)))
        step = draw(st.integers(1, 5))
        text = f"{a}-{b}" if step == 1 else f"{a}-{b}/{step}"
        return text, frozenset(range(a, b + 1, step))

    return st.one_of(star, star_step, single, listed, ranged())


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, list[frozenset[int]]]:
    parts = [draw(_field(lo, hi)) for lo, hi in ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))]
    return " ".join(p[0] for p in parts), [p[1] for p in parts]


def _matches(when: datetime, text: str, sets: list[frozenset[int]]) -> bool:
    minute, hour, dom, month, dow = sets
    fields = text.split()
    weekday = (when.weekday() + 1) % 7
    if fields[2].startswith("*") or fields[4].startswith("*"):
        day = when.day in dom and weekday in dow
    else:
        day = when.day in dom or weekday in dow
    return when.minute in minute and when.hour in hour and when.month in month and day


def _possible(text: str, sets: list[frozenset[int]]) -> bool:
    fields = text.split()
    if not (fields[2].startswith("*") or fields[4].startswith("*")):
        return True
    limits = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return any(d <= limits[m - 1] for m in sets[3] for d in sets[2])


_ALL = [frozenset(range(60)), frozenset(range(24))]
instants = st.datetimes(datetime(2000, 1, 1), datetime(2060, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=200, deadline=None)
@given(expressions(), instants)
def test_next_fire_is_later_and_matches_the_fields(
    expr: tuple[str, list[frozenset[int]]], after: datetime
) -> None:
    text, sets = expr
    assume(_possible(text, sets))
    fire = next_fire(entry(f"{text} x"), after)
    assert fire is not None
    assert fire > after
    assert fire.tzinfo is UTC and fire.second == 0 and fire.microsecond == 0
    assert _matches(fire, text, sets)
    # nothing earlier matches: check whole hours and days first, then minutes
    probe = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while probe < fire:
        day_ok = _matches(probe.replace(hour=0, minute=0), text, [*_ALL[:2], *sets[2:]])
        if not day_ok:
            probe = probe.replace(hour=0, minute=0) + timedelta(days=1)
        elif probe.hour not in sets[1]:
            probe = probe.replace(minute=0) + timedelta(hours=1)
        else:
            assert not _matches(probe, text, sets), probe
            probe += timedelta(minutes=1)


@settings(max_examples=150, deadline=None)
@given(expressions(), instants, st.booleans())
def test_agrees_with_croniter_where_day_rules_coincide(
    expr: tuple[str, list[frozenset[int]]], after: datetime, star_dom: bool
) -> None:
    # croniter ORs day-of-month and day-of-week unless one is exactly `*`; cronie ANDs as
    # soon as one *starts with* `*`. With one of them exactly `*` the two agree.
    text, sets = expr
    fields = text.split()
    fields[2 if star_dom else 4] = "*"
    text = " ".join(fields)
    assume(not re.search(r"\b(\d+)-\1\b", text))  # croniter reads `5-5` as `*`
    assume(star_dom or _possible(text, sets))
    ours = next_fire(entry(f"{text} x"), after)
    theirs = croniter(text, after).get_next(datetime)
    assert ours == theirs


@settings(max_examples=100, deadline=None)
@given(
    expressions(),
    instants,
    st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
)
def test_fires_are_strictly_increasing_in_any_zone(
    expr: tuple[str, list[frozenset[int]]], after: datetime, tz: str
) -> None:
    text, sets = expr
    assume(_possible(text, sets))
    got = next_fires(entry(f"{text} x", tz), after, 5)
    assert got == sorted(set(got))
    assert all(g > after for g in got)


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Australia/Sydney"]


@lru_cache
def _transitions(tz: str) -> tuple[datetime, ...]:
    """UTC instants in 2025 where the zone's offset changes (found by scanning)."""
    zone, found = ZoneInfo(tz), []
    at = utc("2025-01-01T00:00")
    while at.year == 2025:
        step = at + timedelta(minutes=30)
        if step.astimezone(zone).utcoffset() != at.astimezone(zone).utcoffset():
            found.append(step)
        at = step
    return tuple(found)


def _simulate(
    text: str, sets: list[frozenset[int]], tz: str, after: datetime, end: datetime
) -> list[datetime]:
    """cronie's virtual clock, one real minute at a time: the reference for DST behaviour.

    Wildcard jobs fire whenever the wall clock matches. Fixed-time jobs fire only when the
    wall clock is past the latest wall time already seen (so once in a repeated hour), and
    at the first minute after a forward jump if a skipped wall time matched.
    """
    fields, zone = text.split(), ZoneInfo(tz)
    fixed = not (fields[0].startswith("*") or fields[1].startswith("*"))
    at = after.replace(second=0, microsecond=0) - timedelta(hours=4)
    latest = at.astimezone(zone).replace(tzinfo=None)
    fired = []
    while at <= end:
        at += timedelta(minutes=1)
        wall = at.astimezone(zone).replace(tzinfo=None)
        if fixed:
            skipped = latest + timedelta(minutes=1)
            fire = wall > latest and _matches(wall, text, sets)
            while skipped < wall and not fire:
                fire = _matches(skipped, text, sets)
                skipped += timedelta(minutes=1)
        else:
            fire = _matches(wall, text, sets)
        if fire and after < at <= end:
            fired.append(at)
        latest = max(latest, wall)
    return fired


@st.composite
def dense_expressions(draw: st.DrawFn) -> tuple[str, list[frozenset[int]]]:
    """Expressions that fire often around 00:00-04:00 local, where the clocks change."""

    def known(*texts: str, lo: int, hi: int) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
        return st.sampled_from(texts).map(lambda t: (t, _field_values(t, lo, hi)))

    star_day = st.just(("*", frozenset(range(1, 32))))
    star_dow = st.just(("*", frozenset(range(7))))
    minutes = known("0", "30", "15,45", "*/15", "*", lo=0, hi=59)
    hours = known("1", "2", "3", "1-3", "2,3", "0-4/2", "*", lo=0, hi=23)
    minute = draw(st.one_of(minutes, minutes, _field(0, 59)))
    hour = draw(st.one_of(hours, hours, hours, _field(0, 23)))
    dom = draw(st.one_of(star_day, star_day, star_day, _field(1, 31)))
    dow = draw(st.one_of(star_dow, star_dow, star_dow, _field(0, 6)))
    parts = [minute, hour, dom, ("*", frozenset(range(1, 13))), dow]
    return " ".join(p[0] for p in parts), [p[1] for p in parts]


def _field_values(text: str, lo: int, hi: int) -> frozenset[int]:
    if text.startswith("*"):
        return frozenset(range(lo, hi + 1, int(text.partition("/")[2] or 1)))
    values: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        a, _, b = span.partition("-")
        values.update(range(int(a), int(b or a) + 1, int(step or 1)))
    return frozenset(values)


def _simple(text: str) -> tuple[str, list[frozenset[int]]]:
    bounds = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
    return text, [
        _field_values(f, lo, hi) for f, (lo, hi) in zip(text.split(), bounds, strict=True)
    ]


@settings(max_examples=100, deadline=None)
@given(
    dense_expressions(),
    st.sampled_from(ZONES),
    st.integers(0, 1),
    st.integers(-5 * 60, 60),
)
@example(_simple("30 2 * * *"), "Europe/Berlin", 0, -120)  # skipped: runs at 03:00
@example(_simple("30 2 * * *"), "Europe/Berlin", 1, -120)  # repeated: runs once
@example(_simple("15 2 * * *"), "Australia/Lord_Howe", 1, -120)  # 30-minute jump
@example(_simple("*/20 1 * * *"), "America/New_York", 1, -120)  # wildcard: both hours
@example(_simple("0 2 * * *"), "Australia/Sydney", 1, -60)
@example(_simple("0 2 * * *"), "Europe/Berlin", 0, -1)  # `after` in the minute before the jump
@example(_simple("30 2 * * *"), "Europe/Berlin", 1, 10)  # `after` in the second copy
@example(_simple("* 2 * * *"), "Europe/Berlin", 0, -120)  # wildcard: no catch-up
def test_dst_matches_a_minute_by_minute_simulation_of_cronie(
    expr: tuple[str, list[frozenset[int]]], tz: str, which: int, minutes: int
) -> None:
    text, sets = expr
    after = _transitions(tz)[which] + timedelta(minutes=minutes, seconds=17)
    end = after + timedelta(hours=8)
    ours = [f for f in next_fires(entry(f"{text} x", tz), after, 600) if f <= end]
    assert ours == _simulate(text, sets, tz, after, end)


def test_impossible_dates_do_not_loop() -> None:
    # `0 0 30 2 *` is refused at parse time; Feb 29 on a Sunday is rare but real.
    assert fires("0 0 29 2 */7 x", "2025-01-01T00:00", 2) == [
        "2032-02-29T00:00",
        "2060-02-29T00:00",
    ]
