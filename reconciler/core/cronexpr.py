"""Cron schedule maths: the five fields, the next firing, and the words for a schedule.

This exists (instead of croniter, the design card's first choice) because the service has
to fire jobs exactly when cronie would, and croniter differs in two ways that users notice:
it ORs day-of-month and day-of-week whenever neither is literally `*` (cronie ANDs as soon
as either field *starts with* `*`, e.g. `*/2`), and it runs a fixed-time job twice in the
repeated hour when clocks go back. A small matcher over sets of allowed values is simpler
than correcting croniter from the outside. It searches in local wall time and skips whole
months, days and hours, so a typical next firing costs a few microseconds; daylight-saving
gaps and folds are resolved afterwards, the way cronie does (see `next_fire_at`).

Pure: no I/O beyond the zone data `zoneinfo` loads, no clock, no threads.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from reconciler.core.errors import ExprError

FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_WORDS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DOW_WORDS = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
]
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: leap years count

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Longest search for a firing. Feb 29 ANDed with one weekday (`0 0 29 2 */7`) can be 40
# years apart; schedules that can never fire are rejected by `parse_expr` instead.
HORIZON_YEARS = 50
_MINUTE = timedelta(minutes=1)
_SIXTH = re.compile(r"[0-9*?]+|\d*L|\d+W|LW|\d#\d|" + "|".join(MONTH_NAMES + DOW_NAMES))


@dataclass(frozen=True)
class Item:
    """One comma-separated part of a field: `lo-hi/step`; `star` when written as `*`."""

    lo: int
    hi: int
    step: int
    star: bool


def _value(tok: str, index: int) -> int:
    lo, hi = _BOUNDS[index]
    if tok.isascii() and tok.isdigit():
        value = int(tok)
        if not lo <= value <= hi:
            raise ValueError(f"{value} is out of range {lo}-{hi}")
        return value
    names = MONTH_NAMES if index == 3 else DOW_NAMES if index == 4 else None
    if names and tok.upper() in names:
        return names.index(tok.upper()) + (1 if index == 3 else 0)
    if tok == "?":
        raise ValueError("'?' is Quartz syntax; cron writes '*'")
    if re.fullmatch(r"\d*L|\d+W|LW|\d#\d", tok):
        raise ValueError(f"{tok!r} is Quartz syntax that cron does not have")
    if names:
        raise ValueError(
            f"{tok!r} is neither a number {lo}-{hi} nor a name {names[0]}..{names[-1]}"
        )
    raise ValueError(f"{tok!r} is not a number {lo}-{hi}")


def _item(text: str, index: int) -> Item:
    lo, hi = _BOUNDS[index]
    base, slash, step_text = text.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise ValueError(f"step {step_text!r} in {text!r} must be a whole number of at least 1")
        step = int(step_text)
    if base == "*":
        return Item(lo, hi, step, True)
    first, dash, last = base.partition("-")
    if not first or "-" in last:
        raise ValueError(f"{text!r} is not a value, range or step")
    start = _value(first, index)
    if not dash:
        if slash:
            raise ValueError(f"{text!r}: a step needs a range or '*'; write {first}-{hi}/{step}")
        return Item(start, start, 1, False)
    end = _value(last, index) if last else None
    if end is None:
        raise ValueError(f"range {base!r} has no end")
    if start > end:
        sunday = f" (Sunday is also 7: write {first}-7)" if index == 4 and end == 0 else ""
        raise ValueError(f"range {base} is reversed; cron ranges do not wrap around{sunday}")
    return Item(start, end, step, False)


def parse_field(text: str, index: int) -> tuple[tuple[Item, ...], frozenset[int]]:
    """Parse field number `index` (0 = minute); ValueError names what is wrong."""
    if "" in text.split(","):
        raise ValueError(f"empty list item in {text!r}")
    items = tuple(_item(part, index) for part in text.split(","))
    values = {v for it in items for v in range(it.lo, it.hi + 1, it.step)}
    if index == 4 and 7 in values:  # 7 is Sunday too
        values = (values - {7}) | {0}
    return items, frozenset(values)


def looks_like_field(token: str) -> bool:
    """True for tokens made only of cron (or Quartz) field syntax: `*/10`, `0`, `?`, `MON`."""
    return all(_SIXTH.fullmatch(p) for p in re.split(r"[,/-]", token))


@dataclass(frozen=True)
class CronExpr:
    """A parsed five-field schedule. Values are sorted tuples / sets of allowed numbers."""

    text: str
    fields: tuple[str, ...]
    items: tuple[tuple[Item, ...], ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    doms: frozenset[int]
    months: tuple[int, ...]
    dows: frozenset[int]
    # cronie: DOM and DOW are ANDed if either field starts with `*`, else ORed.
    day_and: bool = field(init=False)
    # cronie's "fixed time" job: neither minute nor hour starts with `*` (see next_fire_at).
    fixed: bool = field(init=False)
    _dom_list: tuple[int, ...] = field(init=False, repr=False)
    _dom_only: bool = field(init=False, repr=False)  # days depend on day-of-month alone

    def __post_init__(self) -> None:
        day_and = self.fields[2].startswith("*") or self.fields[4].startswith("*")
        object.__setattr__(self, "day_and", day_and)
        fixed = not (self.fields[0].startswith("*") or self.fields[1].startswith("*"))
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "_dom_list", tuple(sorted(self.doms)))
        object.__setattr__(self, "_dom_only", day_and and len(self.dows) == 7)

    def day_matches(self, day: int, dow: int) -> bool:
        if self.day_and:
            return day in self.doms and dow in self.dows
        return day in self.doms or dow in self.dows

    def matches(self, naive: datetime) -> bool:
        """Does this local wall-clock minute match every field?"""
        return (
            naive.minute in self.minutes
            and naive.hour in self.hours
            and naive.month in self.months
            and self.day_matches(naive.day, (naive.weekday() + 1) % 7)
        )

    def next_match(self, start: datetime) -> datetime | None:
        """First naive wall-clock minute >= `start` (naive, whole minute) matching all fields."""
        y, mo, d, h, mi = start.year, start.month, start.day, start.hour, start.minute
        last_year = min(y + HORIZON_YEARS, MAXYEAR)
        months, hours, minutes = self.months, self.hours, self.minutes
        while y <= last_year:
            if mo not in months:
                i = bisect_left(months, mo)
                if i == len(months):
                    y, mo = y + 1, months[0]
                else:
                    mo = months[i]
                d, h, mi = 1, 0, 0
                continue
            first_weekday, days = monthrange(y, mo)  # Monday = 0
            if self._dom_only:
                k = bisect_left(self._dom_list, d)
                day = self._dom_list[k] if k < len(self._dom_list) else 32
                if day != d:
                    d, h, mi = day, 0, 0
            while d <= days and not self.day_matches(d, (first_weekday + d) % 7):
                d, h, mi = d + 1, 0, 0
            if d > days:
                y, mo, d, h, mi = (y + 1, 1, 1, 0, 0) if mo == 12 else (y, mo + 1, 1, 0, 0)
                continue
            i = bisect_left(hours, h)
            if i == len(hours):
                d, h, mi = d + 1, 0, 0
                continue
            if hours[i] != h:
                h, mi = hours[i], 0
            j = bisect_left(minutes, mi)
            if j == len(minutes):
                h, mi = h + 1, 0
                continue
            return datetime(y, mo, d, h, minutes[j])
        return None


@lru_cache(maxsize=1024)
def parse_expr(text: str) -> CronExpr:
    """Parse five cron fields (macros expanded by the caller); ExprError lists every problem."""
    fields = tuple(text.split())
    if len(fields) != 5:
        raise ExprError([(None, f"expected 5 schedule fields, got {len(fields)}")])
    problems: list[tuple[str | None, str]] = []
    parsed: list[tuple[tuple[Item, ...], frozenset[int]]] = []
    for index, part in enumerate(fields):
        try:
            parsed.append(parse_field(part, index))
        except ValueError as exc:
            problems.append((FIELD_NAMES[index], str(exc)))
    if problems:
        raise ExprError(problems)
    expr = CronExpr(
        text=" ".join(f.upper() for f in fields),
        fields=tuple(f.upper() for f in fields),
        items=tuple(p[0] for p in parsed),
        minutes=tuple(sorted(parsed[0][1])),
        hours=tuple(sorted(parsed[1][1])),
        doms=parsed[2][1],
        months=tuple(sorted(parsed[3][1])),
        dows=parsed[4][1],
    )
    if expr.day_and and not any(d <= _MAX_DAYS[m - 1] for m in expr.months for d in expr.doms):
        months = _join([_MONTH_WORDS[m - 1] for m in expr.months])
        days = _join([str(d) for d in sorted(expr.doms)], "or")
        verb = "has" if len(expr.months) == 1 else "have"
        raise ExprError([("day of month", f"never fires: {months} {verb} no day {days}")])
    return expr


# --- time zones -------------------------------------------------------------------------


def _instants(naive: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """UTC instants of a wall-clock time with fold=0 and fold=1 (PEP 495).

    Equal: an ordinary time. first < second: a repeated time (clocks went back).
    first > second: a skipped time (clocks went forward).
    """
    return (
        naive.replace(tzinfo=tz, fold=0).astimezone(UTC),
        naive.replace(tzinfo=tz, fold=1).astimezone(UTC),
    )


def _transition(lo: datetime, hi: datetime, tz: tzinfo) -> datetime:
    """First instant in (lo, hi] whose UTC offset differs from lo's (whole seconds)."""
    offset = lo.astimezone(tz).utcoffset()
    a, b = int(lo.timestamp()), -int(-hi.timestamp() // 1)
    while b - a > 1:
        mid = (a + b) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == offset:
            a = mid
        else:
            b = mid
    return datetime.fromtimestamp(b, UTC)


def _local(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def next_fire_at(expr: CronExpr, tz: tzinfo, after: datetime) -> datetime | None:
    """First firing strictly after `after` (aware) of `expr` read in zone `tz`, in UTC.

    Daylight saving time follows cronie. Fixed-time jobs (`expr.fixed`): a wall time that
    is skipped when clocks go forward fires at the transition instant, once; a wall time
    that happens twice when clocks go back fires at its first occurrence only. Other jobs
    follow elapsed time: they fire at every real instant whose wall clock matches, so
    they skip the missing hour and run in both copies of the repeated one.
    """
    start = after.astimezone(UTC).replace(second=0, microsecond=0) + _MINUTE
    if tz is UTC:
        found = expr.next_match(start.replace(tzinfo=None))
        return found.replace(tzinfo=UTC) if found else None
    here = start.astimezone(tz)
    naive, fold = here.replace(tzinfo=None, fold=0), here.fold
    resume = _local(start - _MINUTE, tz) + _MINUTE  # the wall time right after `after`
    if resume < naive:  # clocks jump forward exactly at `start`: the skipped times come first
        naive, fold = resume, 0
    if naive.second or naive.microsecond:  # zones with sub-minute offsets (old LMT)
        naive = naive.replace(second=0, microsecond=0) + _MINUTE
    for _ in range(1000):
        first, second = _instants(naive, tz)
        if first < second:  # `naive` lies in a repeated interval [fold_start, fold_end)
            fold_start = _local(_transition(first, second, tz), tz)
            fold_end = fold_start + (second - first)
            found = expr.next_match(naive)
            if found is not None and found < fold_end and (fold == 0 or not expr.fixed):
                return _instants(found, tz)[fold]
            if fold == 0 and not expr.fixed:
                naive, fold = fold_start, 1  # wildcard jobs: the second pass, in real time
            else:
                naive, fold = fold_end, 0
            continue
        found = expr.next_match(naive)
        if found is None:
            return None
        first, second = _instants(found, tz)
        if first <= second:  # ordinary time, or first occurrence of a repeated one
            return first
        jump = _transition(second, first, tz)  # `found` was skipped by a forward jump
        if expr.fixed:
            return jump
        naive, fold = _local(jump, tz), 0
    return None  # pragma: no cover - only reachable with pathological zone data


# --- @every -----------------------------------------------------------------------------

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")


def parse_duration(text: str) -> float:
    """`30s`, `5m`, `1h30m`, `1.5h`, `2d` -> seconds. ValueError if malformed."""
    if not text or _DURATION.sub("", text):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


def format_duration(seconds: float) -> str:
    """Canonical text: 90 -> `1m30s`, 3600 -> `1h`, 1.5 -> `1.5s`."""
    micros = round(seconds * 1_000_000)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    secs = f"{rest / 1_000_000:.6f}".rstrip("0").rstrip(".")
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{secs}s" if rest else "")
    return "".join(parts) or "0s"


def next_every(seconds: float, after: datetime) -> datetime:
    """`@every` fires at whole multiples of the interval since the Unix epoch (UTC)."""
    step = round(seconds * 1_000_000)
    now = (after - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=(now // step + 1) * step)


def describe_duration(seconds: float) -> str:
    micros = round(seconds * 1_000_000)
    words = []
    for unit, size in (("day", 86_400_000_000), ("hour", 3_600_000_000), ("minute", 60_000_000)):
        count, micros = divmod(micros, size)
        if count:
            words.append(f"{count} {unit}{'s' if count != 1 else ''}")
    if micros:
        secs = f"{micros / 1_000_000:.6f}".rstrip("0").rstrip(".")
        words.append(f"{secs} second{'' if secs == '1' else 's'}")
    return _join(words)


# --- words ------------------------------------------------------------------------------


def _join(words: list[str], last: str = "and") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_UNIT = ("minute", "hour", "day-of-month", "month", "day-of-week")


def _name(value: int, index: int) -> str:
    if index == 3:
        return _MONTH_WORDS[value - 1]
    return _DOW_WORDS[value] if index == 4 else str(value)


def _phrase(items: tuple[Item, ...], index: int) -> str:
    """Words for one field, e.g. `every 2nd hour`, `1, 15 and 30`, `Monday through Friday`."""
    unit, words = _UNIT[index], []
    for it in items:
        if it.star:
            words.append(f"every {unit}" if it.step == 1 else f"every {_ordinal(it.step)} {unit}")
        elif it.lo == it.hi:
            words.append(_name(it.lo, index))
        else:
            span = f"{_name(it.lo, index)} through {_name(it.hi, index)}"
            words.append(span if it.step == 1 else f"every {_ordinal(it.step)} {unit} from {span}")
    named = index >= 3 or any(it.star or it.step != 1 for it in items)
    if named:
        return _join(words)
    several = len(items) > 1 or items[0].lo != items[0].hi
    plural = "s" if several and index < 2 else ""
    return f"{unit}{plural} {_join(words)}"


def explain_expr(expr: CronExpr) -> str:
    """Human words for a five-field schedule (without the zone)."""
    minute, hour, dom, month, dow = expr.items
    singles = all(not it.star and it.lo == it.hi for it in minute + hour)
    if singles and len(minute) * len(hour) <= 6:
        times = [f"{h:02d}:{m:02d}" for h in expr.hours for m in expr.minutes]
        text = f"at {_join(times)}"
    elif expr.fields[0] == "*":
        text = "every minute" + ("" if expr.fields[1] == "*" else f" of {_phrase(hour, 1)}")
    else:
        text = _phrase(minute, 0)
        if not text.startswith("every"):
            text = f"at {text} past " + ("every hour" if expr.fields[1] == "*" else "")
        elif expr.fields[1] != "*":
            text += " past "
        text += "" if expr.fields[1] == "*" else _phrase(hour, 1)
    days = []
    if expr.fields[2] != "*":
        days.append(f"on {_phrase(dom, 2)}")
    if expr.fields[4] != "*":
        days.append(f"on {_phrase(dow, 4)}")
    if len(days) == 2:
        text += f", {days[0]} if it is {days[1][3:]}" if expr.day_and else f", {' or '.join(days)}"
    elif days:
        text += f", {days[0]}"
    elif singles and expr.fields[3] == "*":
        text += " every day"
    if expr.fields[3] != "*":
        text += f", in {_phrase(month, 3)}"
    return text
