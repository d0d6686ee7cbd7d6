"""The one Jinja2 environment every exporter renders with, and its escaping filters.

Exports carry text from a branch (commands, env values, crontab lines) into files that
other tools parse, so a quote, a newline or a `$` in that text must never change the
structure of the file. Templates therefore never print a bare value: every value goes
through a filter that encodes it as a complete scalar of the target format.

* `tojson` (Jinja's own, made non-HTML-escaping here) for JSON files;
* `y` for YAML: a JSON-encoded scalar, which is also a valid YAML scalar, with the few
  characters YAML does not allow raw written as `\\u` escapes;
* `cy` for Compose files: like `y`, but `$` is doubled first, because Compose
  interpolates `${...}` in every value and `$$` is its escape for a literal `$`; only
  `Var` strings (the placeholders exporters create on purpose) keep their `$`.

`StrictUndefined` turns a misspelt variable into an error instead of an empty string.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

# Characters YAML refuses to read unescaped, plus the ones YAML 1.1 reads as line breaks
# (NEL, LS, PS: folded into spaces inside a quoted scalar) and the byte-order mark.
_NOT_YAML = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]"
)


class Var(str):
    """A deliberate `${NAME}` placeholder: the one `$` text `cy` leaves for Compose."""

    __slots__ = ()


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_YAML_WORDS = frozenset(("y", "n", "yes", "no", "on", "off", "true", "false", "null"))


def to_json(value: Any, indent: int | None = None, at: int = 0) -> str:
    """JSON text of `value`; non-ASCII kept as is (the files are UTF-8). With `indent`,
    lines after the first are shifted right by `at` to sit inside the template's JSON."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return text.replace("\n", "\n" + " " * at) if at else text


def yaml_scalar(value: Any) -> str:
    """A YAML flow scalar (or flow collection) that reads back as exactly `value`."""
    # Lists and mappings come out as JSON flow collections: valid YAML, escaped the same way.
    return _NOT_YAML.sub(_escape, json.dumps(value, ensure_ascii=False))


def compose_scalar(value: Any) -> str:
    """A YAML scalar for a Compose file: `$` doubled so Compose never interpolates it."""
    return yaml_scalar(_dollars(value))


def _dollars(value: Any) -> Any:
    if isinstance(value, Var):
        return str(value)
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list | tuple):
        return [_dollars(v) for v in value]
    if isinstance(value, dict):
        return {k: _dollars(v) for k, v in value.items()}
    return value


def yaml_block(value: Any, indent: int = 0) -> str:
    """`value` as block-style YAML lines, each starting with a newline and `indent`
    spaces, for `key:{{ value | yb(2) }}`. Every key and scalar goes through `y`."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        out = []
        for key, item in value.items():
            head = f"\n{pad}{yaml_key(str(key))}:"
            out.append(
                head + (yaml_block(item, indent + 2) if _nested(item) else f" {yaml_scalar(item)}")
            )
        return "".join(out)
    if isinstance(value, list | tuple) and value:
        out = []
        for item in value:
            if isinstance(item, dict) and item:
                inner = yaml_block(item, indent + 2)
                out.append(f"\n{pad}- " + inner[indent + 3 :])
            else:
                out.append(f"\n{pad}- {yaml_scalar(item)}")
        return "".join(out)
    return f" {yaml_scalar(value)}"


def yaml_key(key: str) -> str:
    """A mapping key, plain when that cannot be misread (`name`, `app.kubernetes.io/name`)."""
    plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS
    return key if plain else yaml_scalar(key)


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) and bool(value)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def comment(text: str) -> str:
    """Text as `# ` comment lines (for YAML headers): no line of it can escape the comment."""
    lines = str(text).splitlines() or [""]
    return "\n".join(f"# {_NOT_YAML.sub('?', line)}".rstrip() for line in lines)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("exporters", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson"] = to_json
    env.filters["y"] = yaml_scalar
    env.filters["cy"] = compose_scalar
    env.filters["comment"] = comment
    env.filters["yb"] = yaml_block
    env.filters["yk"] = yaml_key
    return env


_ENV: Environment | None = None


def render_template(template: str, /, **context: Any) -> str:
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV.get_template(template).render(**context)
