"""cronie's lexical rules for one crontab line: words, the schedule part of a job line,
`~` random picks, environment values, `%`.

Split out of `crontab.py` so the parser reads as the grammar of a file; these functions
are the byte-level rules of cronie's `load_entry()`, `load_env()` and `do_command()` that
the peers' test vectors pin down (`tests/test_crontab.py`, `tests/test_cron_parity.py`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from reconciler.core.cronexpr import (
    BLANKS,
    BOUNDS,
    FIELD_NAMES,
    MACROS,
    field_value,
    looks_like_field,
    parse_expr,
)
from reconciler.core.cronwords import format_duration, parse_duration
from reconciler.core.errors import ExprError
from reconciler.core.httpjob import is_request_line

CronKind = Literal["cron", "every", "reboot", "once"]
_FIELDS = re.compile(r"([^ \t]+)[ \t]+" * 4 + r"([^ \t]+)(?:[ \t]+(.*))?", re.ASCII)


def words(text: str, limit: int = 0) -> list[str]:
    """`text` split on spaces and tabs only (at most `limit` splits when given)."""
    parts = BLANKS.split(text.strip(" \t"), maxsplit=limit)
    return [p for p in parts if p] if parts != [""] else []


def first_word(text: str) -> tuple[str, str]:
    parts = words(text, 1)
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


def lines(text: str) -> list[str]:
    """cronie reads a crontab line by line on `\n` alone (`str.splitlines` would also
    break on U+0085, U+2028 and other separators); a trailing `\r` is dropped."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def is_duration(word: str) -> bool:
    try:
        parse_duration(word)
    except ValueError:
        return False
    return True


def env_value(text: str) -> str | None:
    """cronie's value rules: matching quotes are stripped; None if the quotes don't match."""
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end < 0 or text[end + 1 :].strip():
            return None
        return text[1:end]
    return text.rstrip()


def split_percent(text: str) -> tuple[str, str | None]:
    """crontab(5) `%`: command up to the first unescaped %, stdin after (cronie's rules)."""
    out: list[str] = []
    escaped = False
    for index, ch in enumerate(text):
        if escaped:
            if ch == "%":
                out[-1] = "%"
            else:
                out.append(ch)
            escaped = False
        elif ch == "%":
            return "".join(out), stdin_text(text[index + 1 :])
        else:
            out.append(ch)
            escaped = ch == "\\"
    return "".join(out), None


def stdin_text(text: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            if ch != "%":
                out.append("\\")
        elif ch == "%":
            ch = "\n"
        escaped = ch == "\\"
        if not escaped:
            out.append(ch)
    if escaped:
        out.append("\\")
    return "".join(out)


_SIX = (
    "6 schedule fields: the sixth field means seconds to some tools and years to others; "
    "use @every for sub-minute schedules"
)
_SEVEN = (
    "7 schedule fields: seconds and years fields (Quartz syntax) are not supported; "
    "use @every for sub-minute schedules"
)
_MAX_EVERY = 366 * 86400.0
_KNOWN = ", ".join([*MACROS, "@reboot"]) + " or @every <duration>"


def parse_schedule(
    line: str, problems: list[tuple[str | None, str]]
) -> tuple[str, str, CronKind, float | None, str] | None:
    """Split a job line into (raw schedule, schedule, kind, every, rest of line)."""
    kind: CronKind
    if line.startswith("@"):
        word, rest = first_word(line)
        if word == "@every":
            text, rest = first_word(rest)
            try:
                seconds = parse_duration(text)
            except ValueError as exc:
                problems.append(("@every", str(exc)))
                return None
            if not 1 <= seconds <= _MAX_EVERY:
                limit = "short; the minimum is 1s" if seconds < 1 else "long; the maximum is 366d"
                problems.append(("@every", f"{text} is too {limit}"))
                return None
            following = first_word(rest)[0]
            if following and is_duration(following):
                problems.append(("@every", f"write the duration without spaces: {text}{following}"))
                return None
            raw, schedule, kind, every = (
                f"@every {text}",
                f"@every {format_duration(seconds)}",
                "every",
                seconds,
            )
        elif word == "@reboot":
            raw, schedule, kind, every = word, word, "reboot", None
        elif word in MACROS:
            raw, schedule, kind, every = word, MACROS[word], "cron", None
        else:
            problems.append((None, f"unknown schedule {word!r}; use {_KNOWN}"))
            return None
        if not rest:
            problems.append(("command", f"missing command after {raw}"))
            return None
        return raw, schedule, kind, every, rest
    match = _FIELDS.fullmatch(line)
    if not match:
        problems.append((None, "expected 5 schedule fields and a command, or NAME=value"))
        return None
    fields, rest = match.groups()[:5], match[6] or ""
    text = " ".join(fields)
    try:  # random ranges are checked with a pick of their own; the entry's comes later
        expr = parse_expr(pick_random(text, "")[0] if "~" in text else text)
    except ExprError as exc:
        problems.extend(exc.problems)
        return None
    after = words(rest, 2)
    if after and looks_like_field(after[0]) and not is_request_line(rest):
        seven = len(after) > 1 and looks_like_field(after[1])
        problems.append((None, _SEVEN if seven else _SIX))
        return None
    if not rest:
        problems.append(("command", "missing command after the 5 schedule fields"))
        return None
    return text, text.upper() if "~" in text else expr.text, "cron", None, rest


def pick_random(text: str, seed: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Resolve crontab(5)'s random ranges (cronie 1.6+): `6~15` is one minute picked in
    6..15, `~` one in the whole field, either end may be left out. cronie picks when it
    reads the file; we pick from `seed` (the entry's identity), so the pick is stable
    across restarts and replicas, like `cron.jitter`. Returns the five fields with the
    picks written in, and the picks as (field index, value). ExprError names the field."""
    fields = [w for w in BLANKS.split(text) if w]
    picks: list[tuple[int, int]] = []
    problems: list[tuple[str | None, str]] = []
    for index, part in enumerate(fields[:5]):
        if "~" not in part:
            continue
        items = part.split(",")
        for k, item in enumerate(items):
            if "~" not in item:
                continue
            try:
                value = _pick(item, index, f"{seed}:{index}:{k}")
            except ValueError as exc:
                problems.append((FIELD_NAMES[index], str(exc)))
                continue
            items[k] = str(value)
            picks.append((index, value))
        fields[index] = ",".join(items)
    if problems:
        raise ExprError(problems)
    return " ".join(fields), tuple(picks)


def _pick(item: str, index: int, seed: str) -> int:
    if "/" in item:
        raise ValueError(f"{item!r}: a random range takes no step")
    first, _, last = item.partition("~")
    if "~" in last:
        raise ValueError(f"{item!r} is not a random range (write low~high)")
    lo, hi = BOUNDS[index]
    if index == 4:
        hi = 6  # Sunday once, as 0
    start = field_value(first, index) if first else lo
    end = field_value(last, index) if last else hi
    if index == 4 and end == 0 and start > 0:
        end = 7
    if start >= end:
        raise ValueError(f"random range {item!r}: the first value must be lower than the second")
    h = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    value = start + h % (end - start + 1)
    return 0 if index == 4 and value == 7 else value
