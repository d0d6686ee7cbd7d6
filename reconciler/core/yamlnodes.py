"""Reading a YAML document as its node graph, for files that need line numbers.

`yaml.compose` (SafeLoader) gives nodes, and only nodes keep line numbers and show
duplicate keys, so a file's checker (spec.py) walks them instead of loaded Python objects.
This module is that walk, independent of any schema: composing with errors that name a
line, the keys of a mapping (duplicate, merge and non-string keys reported), unknown keys
with a close match suggested, and converters from a scalar node to a Python value that
raise `BadValue` for the reader to report with file, line and field. Conventions:

* a key with an empty (null) value counts as absent and gets its default;
* numbers where text is expected (env values, `user: 1000`) keep the text as written;
* anchors and aliases work; merge keys (`<<`) are refused rather than half-supported.
"""

from __future__ import annotations

import difflib
import math
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.core.errors import BadValue, SpecError

T = TypeVar("T")
D = TypeVar("D")
Entry = tuple[str, Node, Node]  # key text, key node, value node

TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (TAG + t for t in ("str", "int", "float", "bool", "null"))
TEXT_TAGS = (STR, INT, FLOAT, TAG + "timestamp")
TRUE = ("yes", "true", "on")  # YAML 1.1 spellings of a true boolean, lower-cased
CONSTRUCTOR = SafeConstructor()  # only its stateless scalar constructors are used

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MIN_MEMORY = 4 * 1024 * 1024
# Nodes a document may have once its aliases are expanded: the walk visits an aliased
# node once per reference, so a small file of nested aliases could cost minutes of CPU.
MAX_EXPANDED_NODES = 100_000


def parse_memory(value: str | int) -> int:
    """Bytes from `268435456`, `"256m"`, `"1.5g"`, `"512MiB"`... (k/m/g/t: powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _MEMORY.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is not None:
        number, unit, suffix = match[1], match[2].lower(), match[3].lower()
        if unit or (suffix in ("", "b") and "." not in number):
            return int(Decimal(number) * _BYTES[unit])
    raise ValueError(f"invalid memory size {value!r}: use bytes or e.g. 512m, 2g")


def parse_duration(value: str | int | float) -> float:
    """Seconds from `30`, `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`, `"1d"`."""
    seconds = math.nan
    text = value.strip() if isinstance(value, str) else ""
    if _DURATION.fullmatch(text):
        parts = _DURATION_PART.findall(text)
        seconds = sum(float(number) * _SECONDS[unit.lower()] for number, unit in parts)
    elif NUMBER.fullmatch(text) or (isinstance(value, int | float) and not isinstance(value, bool)):
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: use seconds or e.g. 30s, 5m, 1h30m, 250ms")
    return seconds


@dataclass
class Fields:
    """The allowed, non-empty keys of one mapping: name -> (key node, value node)."""

    path: str
    items: dict[str, tuple[Node, Node]]

    def at(self, key: str) -> str:
        return join_path(self.path, key)


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def is_tag(node: Node, *tags: str) -> bool:
    return isinstance(node, ScalarNode) and node.tag in tags


def describe(node: Node) -> str:
    if isinstance(node, MappingNode | SequenceNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    names = {NULL: "nothing", BOOL: "a boolean", INT: "a number", FLOAT: "a number"}
    names |= {STR: "a string", TAG + "timestamp": "a date"}
    kind = names.get(node.tag, f"a {node.tag} value")
    return kind if node.tag == NULL else f"{kind} ({node.value})"


# --- scalar converters: a value node in, a Python value out, or BadValue -------------------


def as_text(node: Node) -> str:
    if is_tag(node, *TEXT_TAGS):
        return str(node.value)
    raise BadValue(f"expected a string, got {describe(node)}")


def as_int(node: Node, minimum: int = 0, maximum: int | None = None) -> int:
    if not isinstance(node, ScalarNode) or node.tag != INT:
        raise BadValue(f"expected a whole number, got {describe(node)}")
    value = CONSTRUCTOR.construct_yaml_int(node)
    if value < minimum or (maximum is not None and value > maximum):
        most = f" and at most {maximum}" if maximum is not None else ""
        raise BadValue(f"must be at least {minimum}{most}")
    return value


def as_quantity(node: Node, example: str) -> str | int:
    """A YAML integer as an int, a string or float as written; for parse_duration/memory."""
    if not isinstance(node, ScalarNode) or node.tag not in (STR, INT, FLOAT):
        raise BadValue(f"expected something like {example}, got {describe(node)}")
    return CONSTRUCTOR.construct_yaml_int(node) if node.tag == INT else str(node.value)


def as_duration(node: Node, positive: bool = False) -> float:
    try:
        seconds = parse_duration(as_quantity(node, "30s"))
    except ValueError as exc:
        raise BadValue(str(exc)) from None
    if positive and seconds == 0:
        raise BadValue("must be longer than 0s")
    return seconds


def as_memory(node: Node) -> int:
    try:
        size = parse_memory(as_quantity(node, "256m"))
    except ValueError as exc:
        raise BadValue(str(exc)) from None
    if size < MIN_MEMORY:
        raise BadValue("must be at least 4m")
    return size


def as_cpus(node: Node) -> float:
    text = node.value.strip() if is_tag(node, STR, INT, FLOAT) else ""
    if not NUMBER.fullmatch(text) or float(text) <= 0:
        raise BadValue(f"expected a number above 0, got {describe(node)}")
    return float(text)


def as_choice(node: Node, choices: tuple[str, ...]) -> str:
    if (value := as_text(node)) not in choices:
        raise BadValue(f"must be one of: {', '.join(choices)}")
    return value


def as_timezone(node: Node) -> str:
    try:
        return ZoneInfo(as_text(node)).key
    except (KeyError, ValueError, OSError):  # not found, not a zone name, a directory
        raise BadValue(f"unknown time zone {node.value!r}; try e.g. Europe/Paris") from None


def as_absolute(node: Node) -> str:
    if not (value := as_text(node)).startswith("/"):
        raise BadValue("must start with '/'")
    return value


def as_inside(node: Node, where: str = "the repository") -> str:
    """A relative POSIX path that stays inside `where` after normalisation, normalised."""
    value = as_text(node)
    norm = posixpath.normpath(value)
    if value.startswith("/") or norm == ".." or norm.startswith("../"):
        raise BadValue(f"{value!r} is not a relative path inside {where}")
    return norm


def expanded_size(root: Node) -> int:
    """How many nodes a walk of `root` visits, aliases expanded (each node's size counted
    once, so this costs one pass over the distinct nodes). A node that contains itself
    (`&a [*a]`) counts as over any limit."""
    over = MAX_EXPANDED_NODES + 1
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    order: list[tuple[Node, bool]] = [(root, False)]
    while order:
        node, done = order.pop()
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            open_.discard(id(node))
            sizes[id(node)] = min(over, 1 + sum(sizes[id(c)] for c in children))
            continue
        if id(node) in sizes:
            continue
        if any(id(c) in open_ for c in children) or id(node) in open_:
            return over  # recursive
        open_.add(id(node))
        order.append((node, True))
        order.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


class NodeReader:
    """Walks one document; every problem goes to `errors` and reading carries on.

    `refused(key, value node)` is the schema's say on a key before it is checked against
    the allowed ones: a message to report it with, or None."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[SpecError] = []

    def refused(self, key: str, value: Node) -> str | None:
        return None

    def error(self, node: Node | None, field: str | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.errors.append(SpecError(self.file, line, field or None, message))

    def attempt(
        self, convert: Callable[..., T], node: Node, path: str, /, **options: Any
    ) -> T | None:
        try:
            return convert(node, **options)
        except BadValue as exc:
            self.error(node, path, str(exc))
            return None

    def get(
        self, f: Fields, key: str, convert: Callable[..., T], default: D, /, **options: Any
    ) -> T | D:
        """`convert(value node, **options)` when `key` is set and valid, else `default`."""
        if key not in f.items:
            return default
        value = self.attempt(convert, f.items[key][1], f.at(key), **options)
        return default if value is None else value

    def section(
        self, f: Fields, key: str, parse: Callable[..., T], default: D, /, **options: Any
    ) -> T | D:
        """Like `_get` for a nested section: `parse(node, path, **options)`."""
        return self.get(f, key, parse, default, path=f.at(key), **options)

    def compose(self, text: str) -> Node | None:
        line: int | None = None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
            line = mark.line + 1 if mark else None
            message = f"invalid YAML: {exc.problem or exc.context}"
            if exc.problem and context and line and context.line + 1 != line:
                message += f" ({exc.context} from line {context.line + 1})"
        except yaml.YAMLError as exc:  # a ReaderError: a character YAML does not allow
            position = getattr(exc, "position", None)
            line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
            message = f"invalid YAML: {str(exc).splitlines()[0]}"
        except RecursionError:
            message = "invalid YAML: nested too deeply"
        else:
            if root is not None and expanded_size(root) <= MAX_EXPANDED_NODES:
                return root
            message = (
                "the file is empty; expected a mapping with 'services'"
                if root is None
                else f"more than {MAX_EXPANDED_NODES} values once its aliases are expanded "
                "(or an alias that contains itself)"
            )
        self.errors.append(SpecError(self.file, line, None, message))
        return None

    # --- mappings and keys ----------------------------------------------------------------

    def entries(self, node: MappingNode, path: str) -> list[Entry]:
        """The key/value pairs of `node`; duplicate and non-string keys are reported."""
        entries: dict[str, Entry] = {}
        for key_node, value_node in node.value:
            if key_node.tag == TAG + "merge":
                message = "merge keys (<<) are not supported; alias a whole value instead"
                self.error(key_node, join_path(path, "<<"), message)
            elif not isinstance(key_node, ScalarNode):  # `ON:` or `null:` keys keep their text
                self.error(key_node, path, f"keys must be names, got {describe(key_node)}")
            elif key_node.value in entries:
                first = entries[key_node.value][1].start_mark.line + 1
                message = f"duplicate key (first defined on line {first})"
                self.error(key_node, join_path(path, key_node.value), message)
            else:
                entries[key_node.value] = (key_node.value, key_node, value_node)
        return list(entries.values())

    def mapping(self, node: Node, path: str) -> list[Entry]:
        if not isinstance(node, MappingNode):
            raise BadValue(f"expected a mapping, got {describe(node)}")
        return self.entries(node, path)

    def known(self, entries: list[Entry], path: str, allowed: tuple[str, ...]) -> Fields:
        """Report refused and unknown keys; keep the allowed ones that have a value."""
        items: dict[str, tuple[Node, Node]] = {}
        for key, key_node, value_node in entries:
            if (refusal := self.refused(key, value_node)) is not None:
                self.error(key_node, join_path(path, key), refusal)
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"expected {', '.join(allowed)}"
                self.error(key_node, join_path(path, key), f"unknown key; {hint}")
            elif not is_tag(value_node, NULL):
                items[key] = (key_node, value_node)
        return Fields(path, items)

    def fields(self, node: Node, path: str, allowed: tuple[str, ...]) -> Fields:
        return self.known(self.mapping(node, path), path, allowed)

    # --- collections ----------------------------------------------------------------------

    def string_map(self, node: Node, path: str) -> dict[str, str]:
        """env and build.args: shell-variable names; booleans become "true"/"false"."""
        result: dict[str, str] = {}
        for key, key_node, value_node in self.mapping(node, path):
            field = join_path(path, key)
            if not _ENV_KEY.fullmatch(key):
                message = "invalid name: use A-Z, a-z, 0-9 and _, not starting with a digit"
                self.error(key_node, field, message)
            elif is_tag(value_node, NULL):
                self.error(value_node, field, 'has no value; write "" for an empty string')
            elif is_tag(value_node, BOOL):
                result[key] = "true" if value_node.value.lower() in TRUE else "false"
            elif (text := self.attempt(as_text, value_node, field)) is not None:
                result[key] = text
        return result

    def command(self, node: Node, path: str) -> tuple[str, ...]:
        """A list of strings as is, or one string run by `/bin/sh -c`."""
        if isinstance(node, SequenceNode) and node.value:
            items = [
                self.attempt(as_text, item, f"{path}[{i}]") for i, item in enumerate(node.value)
            ]
            return tuple(item or "" for item in items)
        if not is_tag(node, STR) or not node.value.strip():
            raise BadValue(f"expected a non-empty list of strings or string, got {describe(node)}")
        return ("/bin/sh", "-c", node.value)
