"""cronie's lexical rules for one crontab line: words, environment values, `%`.

Split out of `crontab.py` so the parser reads as the grammar of a line; these functions
are the byte-level rules of cronie's `load_env()` and `do_command()` that the peers' test
vectors pin down (`tests/test_crontab.py`).
"""

from __future__ import annotations

from reconciler.core.cronwords import parse_duration


def first_word(text: str) -> tuple[str, str]:
    parts = text.split(maxsplit=1)
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


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
