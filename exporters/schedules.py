"""Schedule conversions for the exporters: pure functions, exact or not at all.

Every platform reads cron a little differently, so a crontab entry passes through here
before a renderer sees it:

* `@every` becomes five fields only when hoody's meaning (whole multiples of the interval
  since the Unix epoch) is exactly a cron schedule in UTC: `@every 5m` is `*/5 * * * *`;
  `@every 7m` or `@every 30s` is not, and `@reboot` never is.
* A schedule in a time zone becomes a UTC schedule only when that is exact: the zone has
  one fixed offset (no daylight saving time) and the shifted times still form one cron
  line. Otherwise the caller warns.
* AWS wants `cron(min hour dom month dow year)` with `?` in one day field, days of the
  week 1-7 with Sunday = 1, and no OR between the day fields: an OR becomes two schedules.
* Day-of-week 7 (Sunday) is rewritten as 0 for parsers that stop at 6 (robfig/cron).

Functions return `(result, problem)`: exactly one of them is None.
"""

from __future__ import annotations

import shlex
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from reconciler.core.cronexpr import CronExpr, parse_expr
from reconciler.core.crontab import CronEntry

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_DAY = 1440


@dataclass(frozen=True)
class Schedule:
    """Five cron fields and the zone they are read in."""

    fields: str
    timezone: str


def entry_schedule(entry: CronEntry) -> tuple[Schedule | None, str | None]:
    """The entry as five fields, or why no cron schedule can express it."""
    if entry.kind == "cron":
        return Schedule(portable_fields(entry.schedule), entry.timezone), None
    if entry.kind == "every" and entry.every is not None:
        fields = every_to_cron(entry.every)
        if fields is not None:
            return Schedule(fields, "UTC"), None
        return None, (
            f"{entry.schedule} is not a cron schedule (cron has whole minutes, and steps that "
            "divide an hour or a day)"
        )
    if entry.kind == "reboot":
        return None, "@reboot runs when the environment starts; start it from the entrypoint"
    return None, f"{entry.schedule} has no cron equivalent"


def every_to_cron(seconds: float) -> str | None:
    """`@every` as five UTC fields when exact: 5m -> `*/5 * * * *`, 2h -> `0 */2 * * *`."""
    if seconds % 60:
        return None
    minutes = int(seconds // 60)
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    hours, rest = divmod(minutes, 60)
    if rest == 0 and hours < 24 and 24 % hours == 0:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    return "0 0 * * *" if minutes == _DAY else None


def portable_fields(fields: str) -> str:
    """Fields every cron parser reads alike: a day-of-week 7 written as 0."""
    parts = fields.split()
    expr = parse_expr(fields)
    if not parts[4].startswith("*") and any(it.hi == 7 for it in expr.items[4]):
        parts[4] = compress(sorted(expr.dows), 0, 6, star=False)
    return " ".join(parts)


def numeric_fields(fields: str) -> str:
    """Fields without month or weekday names (JAN, MON), for crons that only take numbers."""
    parts = fields.split()
    expr = parse_expr(fields)
    sets = (expr.minutes, expr.hours, sorted(expr.doms), expr.months, sorted(expr.dows))
    for i, text in enumerate(parts):
        if any(ch.isalpha() for ch in text):
            parts[i] = compress(list(sets[i]), *_BOUNDS[i], star=False)
    return " ".join(parts)


def split_days(fields: str) -> tuple[list[str] | None, str | None]:
    """Schedules that never restrict both day fields: an OR of the two becomes two lines."""
    expr = parse_expr(fields)
    kind = day_kind(expr)
    if kind in ("every", "dom", "dow") and "*" in (expr.fields[2], expr.fields[4]):
        return [fields], None
    minute, hour, dom, month, dow = fields.split()
    if kind == "every":
        return [f"{minute} {hour} * {month} *"], None
    if kind == "dom":
        return [f"{minute} {hour} {compress(sorted(expr.doms), 1, 31)} {month} *"], None
    if kind == "dow":
        return [f"{minute} {hour} * {month} {compress(sorted(expr.dows), 0, 6)}"], None
    if kind == "or":
        return [f"{minute} {hour} {dom} {month} *", f"{minute} {hour} * {month} {dow}"], None
    return None, (
        f"{fields!r} needs both a day of the month and a day of the week to match, and "
        "this platform takes only one of the two"
    )


def compress(values: list[int], lo: int, hi: int, star: bool = True) -> str:
    """Sorted values as cron text: `*`, `a-b/n`, or a list of ranges and numbers.

    `star=False` never writes `*`: in the day fields `*` changes how they combine."""
    if star and values == list(range(lo, hi + 1)):
        return "*"
    if len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and values == list(range(values[0], values[-1] + 1, step)):
            return f"{values[0]}-{values[-1]}/{step}"
    out: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(out)


# -- time zones ------------------------------------------------------------------------------


def is_utc(zone: str) -> bool:
    return fixed_offset(zone) == 0


def fixed_offset(zone: str) -> int | None:
    """The zone's UTC offset in minutes if it is the same all of 2020-2045, else None."""
    offsets = zone_offsets(zone)
    return offsets[0] if offsets is not None and len(offsets) == 1 else None


def to_utc(schedule: Schedule) -> tuple[Schedule | None, str | None]:
    """The same firings as a UTC schedule, when exact."""
    offset = fixed_offset(schedule.timezone)
    if offset is None:
        return None, (
            f"{schedule.timezone} changes its UTC offset (daylight saving time), so no UTC "
            "schedule fires at the same moments all year"
        )
    return shift_to_utc(schedule, offset)


def shift_to_utc(schedule: Schedule, offset: int) -> tuple[Schedule | None, str | None]:
    """The schedule's firings while its zone is `offset` minutes ahead of UTC, as a UTC
    schedule, when exact."""
    if offset == 0:
        return Schedule(schedule.fields, "UTC"), None
    expr = parse_expr(schedule.fields)
    carries: set[int] = set()
    times: set[tuple[int, int]] = set()
    for h in expr.hours:
        for m in expr.minutes:
            carry, minute_of_day = divmod(h * 60 + m - offset, _DAY)
            carries.add(carry)
            times.add(divmod(minute_of_day, 60))
    hours = sorted({h for h, _ in times})
    minutes = sorted({m for _, m in times})
    if len(times) != len(hours) * len(minutes):
        return None, "shifted to UTC, its times of day are not one cron line"
    days, problem = _shift_days(expr, carries)
    if days is None:
        return None, problem
    parts = schedule.fields.split()
    minute_text = parts[0] if set(minutes) == set(expr.minutes) else compress(minutes, 0, 59)
    hour_text = parts[1] if hours == sorted(expr.hours) else compress(hours, 0, 23)
    return Schedule(" ".join([minute_text, hour_text, *days]), "UTC"), None


def zone_offsets(zone: str) -> list[int] | None:
    """Every UTC offset (minutes) the zone uses in 2020-2045, or None if one is not whole
    minutes."""
    if zone in ("UTC", "Etc/UTC"):
        return [0]
    found = _offsets(zone)
    return list(found) if found is not None else None


@lru_cache(maxsize=128)
def _offsets(zone: str) -> tuple[int, ...] | None:
    tz = ZoneInfo(zone)
    instant = datetime(2020, 1, 1, tzinfo=UTC)
    seen: set[float] = set()
    while instant.year < 2046:  # weekly samples: daylight saving time lasts months
        offset = instant.astimezone(tz).utcoffset()
        seen.add(offset.total_seconds() if offset is not None else 0.0)
        instant += timedelta(days=7)
    if any(s % 60 for s in seen):
        return None
    return tuple(sorted(int(s // 60) for s in seen))


@lru_cache(maxsize=128)
def posix_rule(zone: str) -> str | None:
    """The zone's current rule as a POSIX TZ string (`CET-1CEST,M3.5.0,M10.5.0/3`), read
    from the footer of its TZif file: any libc, busybox's too, reads it without tzdata."""
    data = _tzif(zone)
    if data is None or not data.startswith(b"TZif") or data[4:5] < b"2":
        return None
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    rule = footer.decode("ascii", "replace").strip()
    return rule if rule and "\ufffd" not in rule else None


def _tzif(zone: str) -> bytes | None:
    if ".." in zone.split("/") or zone.startswith("/"):
        return None
    for base in zoneinfo.TZPATH:
        path = Path(base) / zone
        if path.is_file():
            return path.read_bytes()
    try:
        return resources.files("tzdata.zoneinfo").joinpath(zone).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


def offset_text(offset: int) -> str:
    """`+0100`, `-0330`: how `date +%z` prints an offset of `offset` minutes."""
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return f"{sign}{hours:02d}{minutes:02d}"


def offset_guard(rule: str, offset: int) -> str:
    """sh that ends the job quietly unless the zone is `offset` minutes ahead of UTC now."""
    return f'[ "$(TZ={shlex.quote(rule)} date +%z)" = {offset_text(offset)} ] || exit 0'


def _shift_days(expr: CronExpr, carries: set[int]) -> tuple[list[str] | None, str | None]:
    """Day-of-month, month and day-of-week fields moved by the day carry of the shift."""
    dom, month, dow = expr.fields[2], expr.fields[3], expr.fields[4]
    kind = day_kind(expr)
    if kind == "every" and month == "*":
        return [dom, month, dow], None
    if carries == {0}:
        return [dom, month, dow], None
    if len(carries) != 1:
        return None, "shifted to UTC, some of its times fall on another day than others"
    (carry,) = carries
    doms = sorted(expr.doms)
    dom_ok = all(1 <= d <= 28 and 1 <= d + carry <= 28 for d in doms)
    new_doms = compress([d + carry for d in doms], 1, 31, star=False) if dom_ok else ""
    new_dows = compress(sorted({(d + carry) % 7 for d in expr.dows}), 0, 6, star=False)
    if kind == "dow" and month == "*":
        return [dom, month, new_dows], None
    if kind == "dom" and dom_ok:
        return [new_doms, month, dow], None
    if kind == "or" and dom_ok and month == "*":
        return [new_doms, month, new_dows], None
    return None, "shifted to UTC, its days would move across a month boundary or change meaning"


def day_kind(expr: CronExpr) -> str:
    """every | dom | dow | or | and: how the day fields restrict the days (cronie rules)."""
    dom_all, dow_all = len(expr.doms) == 31, len(expr.dows) == 7
    if expr.day_and:
        if dom_all and dow_all:
            return "every"
        if dom_all and expr.fields[2].startswith("*"):
            return "dow"
        if dow_all and expr.fields[4].startswith("*"):
            return "dom"
        return "and"
    return "every" if dom_all or dow_all else "or"


def ambiguous_days(fields: str) -> str | None:
    """cronie ANDs the day fields when one starts with `*` but is not `*` (`*/2`); other
    crons (robfig/cron: Kubernetes, ofelia) may OR them. Say so when it matters."""
    expr = parse_expr(fields)
    if day_kind(expr) == "and":
        return (
            f"{fields!r} restricts both day fields with a '*' step; cron implementations "
            "disagree on whether both or either must match"
        )
    return None


def min_gap_minutes(fields: str) -> int:
    """Shortest time between two firings within or across days (ignoring skipped days)."""
    expr = parse_expr(fields)
    times = sorted(h * 60 + m for h in expr.hours for m in expr.minutes)
    gaps = [b - a for a, b in pairwise(times)]
    gaps.append(times[0] + _DAY - times[-1])
    return min(gaps)


# -- AWS ---------------------------------------------------------------------------------------


def aws_cron(fields: str) -> tuple[list[str] | None, str | None]:
    """EventBridge `cron(...)` expressions with the same firings (two for a day-field OR)."""
    expr = parse_expr(fields)
    minutes = _aws(list(expr.minutes), 0, 59)
    hours = _aws(list(expr.hours), 0, 23)
    months = _aws(list(expr.months), 1, 12)
    doms = _aws(sorted(expr.doms), 1, 31)
    dows = _aws(sorted(d + 1 for d in expr.dows), 1, 7, step=False)
    kind = day_kind(expr)

    def cron(dom: str, dow: str) -> str:
        return f"cron({minutes} {hours} {dom} {months} {dow} *)"

    if kind == "every":
        return [cron("*", "?")], None
    if kind == "dom":
        return [cron(doms, "?")], None
    if kind == "dow":
        return [cron("?", dows)], None
    if kind == "or":
        return [cron(doms, "?"), cron("?", dows)], None
    return None, (
        f"{fields!r} needs both a day of the month and a day of the week to match; AWS "
        "cron takes only one of the two"
    )


def _aws(values: list[int], lo: int, hi: int, step: bool = True) -> str:
    """AWS field text: `*`, `start/step` (to the field's end; not in day-of-week), or
    numbers and ranges."""
    if values == list(range(lo, hi + 1)):
        return "*"
    if step and len(values) >= 3:
        gap = values[1] - values[0]
        if gap > 1 and values == list(range(values[0], hi + 1, gap)):
            return f"{values[0]}/{gap}"
    text = compress(values, lo, hi, star=False)
    return text if "/" not in text else ",".join(str(v) for v in values)
