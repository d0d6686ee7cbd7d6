"""Schedule conversions: tables of known-correct answers for AWS cron, UTC shifts,
@every, and the rewrites other crons need (Sunday as 0, no names, no day-field OR)."""

from __future__ import annotations

import pytest

from exporters.schedules import (
    Schedule,
    aws_cron,
    compress,
    every_to_cron,
    min_gap_minutes,
    numeric_fields,
    portable_fields,
    split_days,
    to_utc,
)

# standard five fields -> the AWS expressions that fire at the same minutes
AWS_TABLE = [
    ("* * * * *", ["cron(* * * * ? *)"]),
    ("*/5 * * * *", ["cron(0/5 * * * ? *)"]),
    ("0 * * * *", ["cron(0 * * * ? *)"]),
    ("0 0 * * *", ["cron(0 0 * * ? *)"]),  # @daily
    ("0 0 1 1 *", ["cron(0 0 1 1 ? *)"]),  # @yearly
    ("0 0 1 * *", ["cron(0 0 1 * ? *)"]),  # @monthly
    ("0 0 * * 0", ["cron(0 0 ? * 1 *)"]),  # @weekly: Sunday is 1 in AWS
    ("0 0 * * 7", ["cron(0 0 ? * 1 *)"]),  # 7 is Sunday too
    ("0 9 * * 1-5", ["cron(0 9 ? * 2-6 *)"]),
    ("0 9 * * MON-FRI", ["cron(0 9 ? * 2-6 *)"]),
    ("30 18 * * SAT,SUN", ["cron(30 18 ? * 1,7 *)"]),
    ("0 0 * * 5-7", ["cron(0 0 ? * 1,6-7 *)"]),
    ("0 0 * * */2", ["cron(0 0 ? * 1,3,5,7 *)"]),  # no step in AWS day-of-week
    ("15 10 * JAN,JUL *", ["cron(15 10 * 1,7 ? *)"]),
    ("0 6 1-7 * *", ["cron(0 6 1-7 * ? *)"]),
    ("0 0 */10 * *", ["cron(0 0 1/10 * ? *)"]),
    ("5,35 */6 * * *", ["cron(5,35 0/6 * * ? *)"]),
    ("0 8-18/2 * * *", ["cron(0 8,10,12,14,16,18 * * ? *)"]),
    ("0 0 1,15 * 1", ["cron(0 0 1,15 * ? *)", "cron(0 0 ? * 2 *)"]),  # cron ORs them
    ("0 0 13 * FRI", ["cron(0 0 13 * ? *)", "cron(0 0 ? * 6 *)"]),
    ("0 0 1-31 * 1", ["cron(0 0 * * ? *)"]),  # OR with every day is every day
    ("0 0 * * 0-7", ["cron(0 0 * * ? *)"]),
]


@pytest.mark.parametrize(("fields", "expected"), AWS_TABLE)
def test_aws_cron_table(fields: str, expected: list[str]) -> None:
    got, problem = aws_cron(portable_fields(fields))
    assert problem is None
    assert got == expected


@pytest.mark.parametrize("fields", ["0 12 */2 * 1", "0 0 * * 1-5/1", "0 0 */3 * MON"])
def test_aws_cannot_and_the_day_fields(fields: str) -> None:
    expressions, problem = aws_cron(fields)
    if "1-5/1" in fields:  # `*` not first: an ordinary day-of-week restriction
        assert expressions == ["cron(0 0 ? * 2-6 *)"]
        return
    assert expressions is None and problem and "only one of the two" in problem


UTC_TABLE = [
    ("0 9 * * *", "Asia/Kolkata", "30 3 * * *"),  # +05:30, no DST
    ("*/15 * * * *", "Asia/Kolkata", "*/15 * * * *"),
    ("0 0,12 * * *", "Asia/Kolkata", "30 6,18 * * *"),  # days do not matter: every day
    ("30 1 * * 1", "Asia/Kolkata", "0 20 * * 0"),  # Monday 01:30 IST is Sunday 20:00 UTC
    ("0 0 10 * *", "Asia/Tokyo", "0 15 9 * *"),
    ("0 23 1 * *", "Etc/GMT+5", "0 4 2 * *"),  # UTC-5
    ("0 9 * * 1-5", "UTC", "0 9 * * 1-5"),
    ("0 9 * * *", "Etc/UTC", "0 9 * * *"),
]


@pytest.mark.parametrize(("fields", "zone", "expected"), UTC_TABLE)
def test_utc_conversion_table(fields: str, zone: str, expected: str) -> None:
    utc, problem = to_utc(Schedule(fields, zone))
    assert problem is None and utc is not None
    assert utc == Schedule(expected, "UTC")


@pytest.mark.parametrize(
    ("fields", "zone", "why"),
    [
        ("0 9 * * *", "Europe/Paris", "daylight saving"),
        ("0 9 * * *", "America/New_York", "daylight saving"),
        ("30 2 * * *", "Australia/Lord_Howe", "daylight saving"),
        ("0 0 1 * *", "Asia/Tokyo", "month boundary"),  # the 1st 00:00 JST: last day, UTC
        ("0 0 * 1 *", "Asia/Tokyo", "month boundary"),
        ("0 0,23 * * 1", "Asia/Tokyo", "another day"),
        ("0 5 */2 * 1", "Asia/Tokyo", "change meaning"),  # an AND of both day fields
    ],
)
def test_inexact_utc_conversions_are_refused(fields: str, zone: str, why: str) -> None:
    utc, problem = to_utc(Schedule(fields, zone))
    assert utc is None and problem is not None and why in problem


def test_same_day_shift_keeps_the_day_fields() -> None:
    assert to_utc(Schedule("0 12 */2 * 1", "Asia/Tokyo")) == (Schedule("0 3 */2 * 1", "UTC"), None)


@pytest.mark.parametrize(
    ("seconds", "fields"),
    [
        (60, "* * * * *"),
        (300, "*/5 * * * *"),
        (900, "*/15 * * * *"),
        (1800, "*/30 * * * *"),
        (3600, "0 * * * *"),
        (7200, "0 */2 * * *"),
        (6 * 3600, "0 */6 * * *"),
        (86400, "0 0 * * *"),
        (30, None),  # sub-minute
        (90, None),
        (420, None),  # 7m does not divide an hour: not aligned with cron's minutes
        (5 * 3600, None),
        (2 * 86400, None),
    ],
)
def test_every_conversions_are_exact_or_none(seconds: float, fields: str | None) -> None:
    assert every_to_cron(seconds) == fields


def test_field_rewrites() -> None:
    assert portable_fields("30 1 * * 7") == "30 1 * * 0"
    assert portable_fields("0 0 15 * 1-7") == "0 0 15 * 0-6"  # never `*`: that would AND
    assert portable_fields("0 0 * * */2") == "0 0 * * */2"
    assert numeric_fields("0 9 * JAN-MAR MON-FRI") == "0 9 * 1-3 1-5"
    assert split_days("0 0 1,15 * 1") == (["0 0 1,15 * *", "0 0 * * 1"], None)
    assert split_days("0 0 * * 1") == (["0 0 * * 1"], None)
    assert split_days("0 0 */2 * 1")[0] is None
    assert compress([0, 15, 30, 45], 0, 59) == "0-45/15"
    assert compress([1, 2, 3, 7, 9], 0, 59) == "1-3,7,9"
    assert min_gap_minutes("*/5 * * * *") == 5
    assert min_gap_minutes("0,1 * * * *") == 1
    assert min_gap_minutes("0 0 * * *") == 1440


def test_zone_offsets_posix_rules_and_shifts() -> None:
    from exporters.schedules import offset_text, posix_rule, shift_to_utc, zone_offsets

    assert zone_offsets("Europe/Paris") == [60, 120]
    assert zone_offsets("Asia/Kolkata") == [330]
    assert zone_offsets("UTC") == [0]
    assert posix_rule("Europe/Paris") == "CET-1CEST,M3.5.0,M10.5.0/3"
    assert posix_rule("America/New_York") == "EST5EDT,M3.2.0,M11.1.0"
    assert posix_rule("../../../etc/passwd") is None
    assert (offset_text(120), offset_text(-270), offset_text(0)) == ("+0200", "-0430", "+0000")
    # 00:30 on Mondays in Paris is Sunday evening in UTC, either offset
    winter, _ = shift_to_utc(Schedule("30 0 * * 1", "Europe/Paris"), 60)
    summer, _ = shift_to_utc(Schedule("30 0 * * 1", "Europe/Paris"), 120)
    assert winter is not None and winter.fields == "30 23 * * 0"
    assert summer is not None and summer.fields == "30 22 * * 0"
