"""Parse and validate a branch's `.hoody/app.yaml` into a frozen `model.AppSpec`.

The file comes from any branch or pull request, so it is untrusted input that decides
what runs on our Docker host. It is checked here, once, before any other layer sees it:
unknown keys, types and ranges, and above all anything that would give a branch power
over the host (privileged mode, host namespaces, devices, bind mounts, build contexts
outside the repository). Problems are collected rather than raised one at a time, each
naming the file, the 1-based line and the dotted field path, so an author can fix the
whole file in one go: `.hoody/app.yaml:7: services.web.privileged: not allowed: ...`.

We walk the node graph of `yaml.compose` (SafeLoader) rather than loaded Python objects
because only nodes keep line numbers and show duplicate keys. Conventions:

* a key with an empty (null) value counts as absent and gets its default;
* merge keys (`<<: *defaults`) are honoured, explicit keys override merged ones;
* numbers where text is expected (env values, `user: 1000`) keep the text as written.
"""

from __future__ import annotations

import difflib
import math
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import SpecError, SpecErrors
from .model import SPEC_FILE, AppSpec, BuildSpec, ConcurrencyPolicy, CronSettings, HealthCheck
from .model import PreviewSettings, Resources, ServiceSpec
from .naming import valid_app_name

__all__ = ["parse_app_spec", "parse_duration", "parse_memory"]

HOST_POWER = "not allowed: it would give a branch power over the host"
BIND_MOUNT = "bind mounts are not allowed; use a named volume"
MIN_MEMORY = 4 * 1024 * 1024

# Refused with HOST_POWER wherever they appear; so is `network: host`.
HOSTILE_KEYS = frozenset(
    "privileged network_mode pid ipc uts cap_add devices device_cgroup_rules security_opt"
    " userns_mode cgroup cgroup_parent sysctls volumes_from entitlements".split()
)
TOP_KEYS = ("name", "services", "cron", "preview")
SERVICE_KEYS = tuple(
    "image build command entrypoint env ports volumes healthcheck resources user working_dir".split()
)
BUILD_KEYS = ("context", "dockerfile", "args")
HEALTH_KEYS = ("http", "port", "command", "interval", "timeout", "start_period", "retries")
RESOURCE_KEYS = ("memory", "cpus")
CRON_KEYS = tuple(
    "service user timezone timeout concurrency retries jitter pause_after_failures"
    " starting_deadline history".split()
)
CONCURRENCY = ("forbid", "allow", "replace")

T = TypeVar("T")
D = TypeVar("D")
_Entry = tuple[str, Node, Node]  # key text, key node, value node

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TEXT_TAGS = (_STR, _INT, _FLOAT, _TAG + "timestamp")
_CONSTRUCTOR = SafeConstructor()  # only its stateless scalar constructors are used

_SERVICE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VOLUME_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_PORT = re.compile(r"(\d{1,5})(?:/tcp)?", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.fullmatch(value.strip()):
        parts = _DURATION_PART.findall(value)
        seconds = sum(float(number) * _SECONDS[unit.lower()] for number, unit in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: use seconds or e.g. 30s, 5m, 1h30m, 250ms")
    return seconds


def parse_app_spec(text: str, file: str = SPEC_FILE, default_name: str = "app") -> AppSpec:
    """The spec in `text`, or `SpecErrors` with every problem found, sorted by line.

    `default_name` is the app name used when the file has no `name`."""
    parser = _Parser(file)
    spec = parser.parse(text, default_name)
    if spec is None or parser.errors:
        raise SpecErrors(sorted(parser.errors, key=lambda e: e.line or 0))
    return spec


class _Invalid(Exception):
    """A value is wrong; whoever holds its node and field path reports it."""


@dataclass
class _Fields:
    """The allowed, non-empty keys of one mapping: name -> (key node, value node)."""

    path: str
    items: dict[str, tuple[Node, Node]]

    def at(self, key: str) -> str:
        return _join(self.path, key)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is(node: Node, *tags: str) -> bool:
    return isinstance(node, ScalarNode) and node.tag in tags


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode | SequenceNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    names = {_NULL: "nothing", _BOOL: "a boolean", _INT: "a number", _FLOAT: "a number"}
    kind = names.get(node.tag, "a string" if node.tag == _STR else f"a {node.tag} value")
    return kind if node.tag == _NULL else f"{kind} ({node.value})"


def _is_bind(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or "/" in source


# --- scalar converters: a value node in, a Python value out, or _Invalid ------------------


def _text(node: Node) -> str:
    if _is(node, *_TEXT_TAGS):
        return str(node.value)
    raise _Invalid(f"expected a string, got {_kind(node)}")


def _int(node: Node, minimum: int = 0, maximum: int | None = None) -> int:
    if not isinstance(node, ScalarNode) or node.tag != _INT:
        raise _Invalid(f"expected a whole number, got {_kind(node)}")
    value = _CONSTRUCTOR.construct_yaml_int(node)
    if value < minimum or (maximum is not None and value > maximum):
        raise _Invalid(
            f"must be at least {minimum}" + (f" and at most {maximum}" if maximum else "")
        )
    return value


def _duration(node: Node, positive: bool = False) -> float:
    if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
        raise _Invalid(f"expected a duration like 30s, got {_kind(node)}")
    try:
        seconds = parse_duration(int(node.value) if node.tag == _INT else node.value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    if positive and seconds == 0:
        raise _Invalid("must be longer than 0s")
    return seconds


def _memory(node: Node) -> int:
    if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
        raise _Invalid(f"expected a size like 256m, got {_kind(node)}")
    try:
        size = parse_memory(
            _CONSTRUCTOR.construct_yaml_int(node) if node.tag == _INT else node.value
        )
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    if size < MIN_MEMORY:
        raise _Invalid("must be at least 4m")
    return size


def _cpus(node: Node) -> float:
    text = node.value.strip() if _is(node, _STR, _INT, _FLOAT) else ""
    if not _NUMBER.fullmatch(text) or float(text) <= 0:
        raise _Invalid(f"expected a number above 0, got {_kind(node)}")
    return float(text)


def _choice(node: Node, choices: tuple[str, ...]) -> str:
    if (value := _text(node)) not in choices:
        raise _Invalid(f"must be one of: {', '.join(choices)}")
    return value


def _timezone(node: Node) -> str:
    try:
        return ZoneInfo(_text(node)).key
    except (KeyError, ValueError, OSError):  # not found, not a zone name, a directory
        raise _Invalid(f"unknown time zone {node.value!r}; use an IANA name like Europe/Paris")


def _app_name(node: Node) -> str:
    if not valid_app_name(value := _text(node)):
        raise _Invalid(
            "use at most 40 of a-z, 0-9 and single '-', starting and ending alphanumeric"
        )
    return value


def _image(node: Node) -> str:
    if not (value := _text(node)) or any(c.isspace() for c in value):
        raise _Invalid("expected an image reference like busybox:1.36")
    return value


def _absolute(node: Node, prefix: str = "/") -> str:
    if not (value := _text(node)).startswith(prefix):
        raise _Invalid(f"must start with {prefix!r}")
    return value


def _inside(node: Node, where: str = "the repository") -> str:
    """A relative POSIX path that stays inside `where` after normalisation, normalised."""
    value = _text(node)
    norm = posixpath.normpath(value)
    if value.startswith("/") or norm == ".." or norm.startswith("../"):
        raise _Invalid(f"{value!r} is not a relative path inside {where}")
    return norm


class _Parser:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[SpecError] = []
        self._flattened: dict[int, list[_Entry]] = {}

    def error(self, node: Node | None, field: str | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.errors.append(SpecError(self.file, line, field or None, message))

    def _try(self, convert: Callable[..., T], node: Node, path: str, **options: Any) -> T | None:
        try:
            return convert(node, **options)
        except _Invalid as exc:
            self.error(node, path, str(exc))
            return None

    def _get(self, f: _Fields, key: str, convert: Callable[..., T | None], default: D,
             **options: Any) -> T | D:  # fmt: skip
        """`convert(value node, **options)` when `key` is set and valid, else `default`."""
        value = (
            self._try(convert, f.items[key][1], f.at(key), **options) if key in f.items else None
        )
        return default if value is None else value

    def _section(self, f: _Fields, key: str, parse: Callable[..., T], default: D,
                 **options: Any) -> T | D:  # fmt: skip
        """Like `_get` for a nested section: `parse(node, path, **options)`."""
        return self._get(f, key, parse, default, path=f.at(key), **options)

    def parse(self, text: str, default_name: str) -> AppSpec | None:
        root = self._compose(text)
        if root is None:
            return None
        if not isinstance(root, MappingNode):
            self.error(root, None, f"expected a mapping of settings, got {_kind(root)}")
            return None
        top = self._known(self._entries(root, ""), "", TOP_KEYS + SERVICE_KEYS)
        name = self._get(top, "name", _app_name, None)
        if "name" not in top.items and not valid_app_name(default_name):
            self.error(None, "name", f"missing, and the default {default_name!r} is not valid")
        service_keys = {key: nodes for key, nodes in top.items.items() if key in SERVICE_KEYS}
        if "services" in top.items:
            services = self._section(top, "services", self._services, {})
            for key, (key_node, _) in service_keys.items():
                self.error(
                    key_node, key, "cannot be combined with 'services'; move it to a service"
                )
        elif service_keys:  # the single-service shorthand
            services = {"app": self._service("app", _Fields("", service_keys), root)}
        else:
            self.error(root, "services", "required (or 'image' or 'build' for a single service)")
            return None
        return AppSpec(
            name=name or default_name,
            services=services,
            cron=self._section(top, "cron", self._cron, CronSettings(), services=services),
            preview=self._section(top, "preview", self._preview, PreviewSettings()),
        )

    def _compose(self, text: str) -> Node | None:
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
            if root is not None:
                return root
            message = "the file is empty; expected a mapping with 'services'"
        self.errors.append(SpecError(self.file, line, None, message))
        return None

    # --- mappings and keys ----------------------------------------------------------------

    def _entries(self, node: MappingNode, path: str, active: frozenset[int] = frozenset()) -> list[_Entry]:  # fmt: skip
        """The key/value pairs of `node` with merge keys applied and duplicates reported."""
        if id(node) in active:
            self.error(node, _join(path, "<<"), "a merge key includes its own mapping")
            return []
        if id(node) in self._flattened:  # an alias seen before: reported once already
            return self._flattened[id(node)]
        own: dict[str, _Entry] = {}
        merged: dict[str, _Entry] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        self.error(source, _join(path, "<<"), "a merge key needs mappings")
                        continue
                    for entry in self._entries(source, path, active | {id(node)}):
                        merged.setdefault(entry[0], entry)  # the earlier source wins
            elif not isinstance(key_node, ScalarNode):
                self.error(key_node, path, f"keys must be strings, got {_kind(key_node)}")
            elif key_node.value in own:
                first = own[key_node.value][1].start_mark.line + 1
                message = f"duplicate key (first defined on line {first})"
                self.error(key_node, _join(path, key_node.value), message)
            else:
                own[key_node.value] = (key_node.value, key_node, value_node)
        entries = [entry for key, entry in merged.items() if key not in own]
        self._flattened[id(node)] = entries = entries + list(own.values())
        return entries

    def _mapping(self, node: Node) -> list[_Entry]:
        if not isinstance(node, MappingNode):
            raise _Invalid(f"expected a mapping, got {_kind(node)}")
        return self._entries(node, "")

    def _known(self, entries: list[_Entry], path: str, allowed: tuple[str, ...]) -> _Fields:
        """Report hostile and unknown keys; keep the allowed ones that have a value."""
        items: dict[str, tuple[Node, Node]] = {}
        for key, key_node, value_node in entries:
            if key in HOSTILE_KEYS or (key == "network" and _is(value_node, _STR)
                                       and value_node.value == "host"):  # fmt: skip
                self.error(key_node, _join(path, key), HOST_POWER)
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"expected {', '.join(allowed)}"
                self.error(key_node, _join(path, key), f"unknown key; {hint}")
            elif not _is(value_node, _NULL):
                items[key] = (key_node, value_node)
        return _Fields(path, items)

    def _fields(self, node: Node, path: str, allowed: tuple[str, ...]) -> _Fields:
        if not isinstance(node, MappingNode):
            raise _Invalid(f"expected a mapping, got {_kind(node)}")
        return self._known(self._entries(node, path), path, allowed)
