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

Files meant to go through `envsubst` (Kubernetes, Cloud Run) are rendered with
`substitutable=True`: there every filter writes each `$` of a non-`Var` string as the
escape `\u0024` (YAML and JSON read it back as `$`), so envsubst, which has no escape of
its own, sees no `$` but our placeholders' and cannot rewrite `$REPORT_DIR` in a command
or turn a branch's `${AWS_SECRET_ACCESS_KEY}` into the secret; comments show `\u0024`.

`StrictUndefined` turns a misspelt variable into an error instead of an empty string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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


class Joined(str):
    """Text made of literal parts and `Var` placeholders (`Bearer ${API_TOKEN}`): in a
    substitutable file only its `Var` parts keep their `$`."""

    parts: tuple[str, ...]

    def __new__(cls, *parts: str) -> Joined:
        text = super().__new__(cls, "".join(parts))
        text.parts = parts
        return text


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


def safe_json(value: Any, indent: int | None = None, level: int = 0) -> str:
    """JSON text of `value` (laid out as `json.dumps` does) in which no `$` appears but
    those of `Var` placeholders: every other one is written `\\u0024`."""
    if isinstance(value, Joined):
        return '"' + "".join(safe_json(part)[1:-1] for part in value.parts) + '"'
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if isinstance(value, Var) else text.replace("$", "\\u0024")
    if isinstance(value, dict):
        items = [
            f"{safe_json(str(k))}: {safe_json(v, indent, level + 1)}" for k, v in value.items()
        ]
        return _layout(items, "{", "}", indent, level)
    if isinstance(value, list | tuple):
        items = [safe_json(v, indent, level + 1) for v in value]
        return _layout(items, "[", "]", indent, level)
    return json.dumps(value)


def _layout(items: list[str], start: str, end: str, indent: int | None, level: int) -> str:
    if indent is None or not items:
        return start + ", ".join(items) + end
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    return start + "\n" + ",\n".join(inner + i for i in items) + "\n" + pad + end


def safe_yaml_scalar(value: Any) -> str:
    return _NOT_YAML.sub(_escape, safe_json(value))


def safe_to_json(value: Any, indent: int | None = None, at: int = 0) -> str:
    """`to_json` for substitutable files: only `Var`s keep a `$`."""
    text = safe_json(value, indent)
    return text.replace("\n", "\n" + " " * at) if at else text


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


def yaml_block(value: Any, indent: int = 0, scalar: Callable[[Any], str] = yaml_scalar) -> str:
    """`value` as block-style YAML lines, each starting with a newline and `indent`
    spaces, for `key:{{ value | yb(2) }}`. Every key and scalar goes through `scalar`."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        out = []
        for key, item in value.items():
            head = f"\n{pad}{yaml_key(str(key), scalar)}:"
            inner = yaml_block(item, indent + 2, scalar) if _nested(item) else f" {scalar(item)}"
            out.append(head + inner)
        return "".join(out)
    if isinstance(value, list | tuple) and value:
        out = []
        for item in value:
            if isinstance(item, dict) and item:
                inner = yaml_block(item, indent + 2, scalar)
                out.append(f"\n{pad}- " + inner[indent + 3 :])
            else:
                out.append(f"\n{pad}- {scalar(item)}")
        return "".join(out)
    return f" {scalar(value)}"


def yaml_key(key: str, scalar: Callable[[Any], str] = yaml_scalar) -> str:
    """A mapping key, plain when that cannot be misread (`name`, `app.kubernetes.io/name`)."""
    plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS
    return key if plain else scalar(key)


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) and bool(value)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def comment(text: str) -> str:
    """Text as `# ` comment lines (for YAML headers): no line of it can escape the comment."""
    lines = str(text).splitlines() or [""]
    return "\n".join(f"# {_NOT_YAML.sub('?', line)}".rstrip() for line in lines)


def safe_comment(text: str) -> str:
    return comment(str(text).replace("$", "\\u0024"))


def environment(substitutable: bool = False) -> Environment:
    env = Environment(
        loader=PackageLoader("exporters", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cy"] = compose_scalar
    if substitutable:
        env.filters["tojson"] = safe_to_json
        env.filters["y"] = safe_yaml_scalar
        env.filters["comment"] = safe_comment
        env.filters["yb"] = lambda v, indent=0: yaml_block(v, indent, safe_yaml_scalar)
        env.filters["yk"] = lambda k: yaml_key(k, safe_yaml_scalar)
    else:
        env.filters["tojson"] = to_json
        env.filters["y"] = yaml_scalar
        env.filters["comment"] = comment
        env.filters["yb"] = yaml_block
        env.filters["yk"] = yaml_key
    return env


_ENVS: dict[bool, Environment] = {}


def render_template(template: str, /, substitutable: bool = False, **context: Any) -> str:
    """Render `template`; `substitutable` for files the user runs through envsubst."""
    env = _ENVS.get(substitutable)
    if env is None:
        env = _ENVS[substitutable] = environment(substitutable)
    return env.get_template(template).render(**context)
