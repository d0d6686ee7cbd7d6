"""Schedules as text for people: `@every` durations read and written, and a schedule in
words (`hoody cron`, the API and the dashboard show both).

Apart from the maths in `cronexpr.py` because it answers a different question: not when a
schedule fires, but how to say it. Pure, like the maths.
"""

from __future__ import annotations

import re

from reconciler.core.cronexpr import MONTH_WORDS, CronExpr, Item, join_words

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
    return join_words(words)


# --- words ------------------------------------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_UNIT = ("minute", "hour", "day-of-month", "month", "day-of-week")


def _name(value: int, index: int) -> str:
    if index == 3:
        return MONTH_WORDS[value - 1]
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
        return join_words(words)
    several = len(items) > 1 or items[0].lo != items[0].hi
    plural = "s" if several and index < 2 else ""
    return f"{unit}{plural} {join_words(words)}"


def explain_expr(expr: CronExpr) -> str:
    """Human words for a five-field schedule (without the zone)."""
    minute, hour, dom, month, dow = expr.items
    singles = all(not it.star and it.lo == it.hi for it in minute + hour)
    if singles and len(minute) * len(hour) <= 6:
        times = [f"{h:02d}:{m:02d}" for h in expr.hours for m in expr.minutes]
        text = f"at {join_words(times)}"
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
