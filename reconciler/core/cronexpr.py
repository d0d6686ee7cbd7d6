"""Cron schedule maths: the five fields and the next firing (`cronwords.py` says them in
words).

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
import unicodedata
from bisect import bisect_left
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from reconciler.core.errors import ExprError

FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTH_WORDS = [
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
# cronie separates fields only with spaces and tabs (`Skip_Blanks`, `Get_Field`): a U+00A0
# or U+3000 inside a field is part of it, never a separator (croniter agrees).
BLANKS = re.compile(r"[ \t]+", re.ASCII)
_CONTROL_NAMES = {0x0B: "LINE TABULATION", 0x0C: "FORM FEED", 0x85: "NEXT LINE"}
_SIXTH = re.compile(r"[0-9*?]+|\d*L|\d+W|LW|\d#\d|" + "|".join(MONTH_NAMES + DOW_NAMES))


@dataclass(frozen=True)
class Item:
    """One comma-separated part of a field: `lo-hi/step`; `star` when written as `*`."""

    lo: int
    hi: int
    step: int
    star: bool


def odd_space(text: str) -> str | None:
    """The first whitespace character in `text` that cron does not take as a blank,
    named: `U+00A0 (NO-BREAK SPACE)`; None if there is none."""
    for ch in text:
        if ch.isspace() and ch not in " \t":
            name = _CONTROL_NAMES.get(ord(ch)) or unicodedata.name(ch, "whitespace")
            return f"U+{ord(ch):04X} ({name})"
    return None


def field_value(tok: str, index: int) -> int:
    lo, hi = BOUNDS[index]
    if tok.isascii() and tok.isdigit():
        value = int(tok)
        if not lo <= value <= hi:
            raise ValueError(f"{value} is out of range {lo}-{hi}")
        return value
    space = odd_space(tok)
    if space:
        raise ValueError(
            f"{tok!r} contains {space}; cron separates fields only with spaces and tabs"
        )
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
    lo, hi = BOUNDS[index]
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
    start = field_value(first, index)
    if not dash:
        if slash:
            raise ValueError(f"{text!r}: a step needs a range or '*'; write {first}-{hi}/{step}")
        return Item(start, start, 1, False)
    end = field_value(last, index) if last else None
    if end is None:
        raise ValueError(f"range {base!r} has no end")
    if index == 4 and end == 0 and start > 0:
        end = 7  # cronie reads a range ending at Sunday (`FRI-SUN`, `5-0`) as ending at 7
    if start > end:
        raise ValueError(f"range {base} is reversed; cron ranges do not wrap around")
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


def join_words(words: list[str], last: str = "and") -> str:
    """`a`, `a and b`, `a, b and c` (or `last` for the last one)."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


@lru_cache(maxsize=1024)
def parse_expr(text: str) -> CronExpr:
    """Parse five cron fields (macros expanded by the caller); ExprError lists every problem."""
    fields = tuple(w for w in BLANKS.split(text) if w)
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
        months = join_words([MONTH_WORDS[m - 1] for m in expr.months])
        days = join_words([str(d) for d in sorted(expr.doms)], "or")
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


def next_every(seconds: float, after: datetime) -> datetime:
    """`@every` fires at whole multiples of the interval since the Unix epoch (UTC)."""
    step = round(seconds * 1_000_000)
    now = (after - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=(now // step + 1) * step)
