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
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.core.errors import BadValue, SpecError, SpecErrors
from reconciler.core.model import (
    SPEC_FILE,
    AppSpec,
    BuildSpec,
    ConcurrencyPolicy,
    CronSettings,
    HealthCheck,
    PreviewSettings,
    Resources,
    ServiceSpec,
)
from reconciler.core.naming import valid_app_name

__all__ = ["parse_app_spec", "parse_duration", "parse_memory"]

HOST_POWER = "not allowed: it would give a branch power over the host"
BIND_MOUNT = "bind mounts are not allowed; use a named volume"
MIN_MEMORY = 4 * 1024 * 1024

# fmt: off
# Refused with HOST_POWER wherever they appear; so is `network: host`.
HOSTILE_KEYS = frozenset((
    "privileged", "network_mode", "pid", "ipc", "uts", "cap_add", "devices", "security_opt",
    "device_cgroup_rules", "userns_mode", "cgroup", "cgroup_parent", "sysctls", "volumes_from",
    "entitlements",
))
TOP_KEYS = ("name", "services", "cron", "preview")
SERVICE_KEYS = (
    "image", "build", "command", "entrypoint", "env", "ports", "volumes", "healthcheck",
    "resources", "user", "working_dir",
)
BUILD_KEYS = ("context", "dockerfile", "args")
HEALTH_KEYS = ("http", "port", "command", "interval", "timeout", "start_period", "retries")
RESOURCE_KEYS = ("memory", "cpus")
CRON_KEYS = (
    "service", "user", "timezone", "timeout", "concurrency", "retries", "jitter",
    "pause_after_failures", "starting_deadline", "history",
)
# fmt: on
CONCURRENCY = ("forbid", "allow", "replace")

T = TypeVar("T")
D = TypeVar("D")
_Entry = tuple[str, Node, Node]  # key text, key node, value node

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TEXT_TAGS = (_STR, _INT, _FLOAT, _TAG + "timestamp")
_TRUE = ("yes", "true", "on")  # YAML 1.1 spellings of a true boolean, lower-cased
_CONSTRUCTOR = SafeConstructor()  # only its stateless scalar constructors are used

_SERVICE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VOLUME_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_PORT = re.compile(r"(\d{1,5})(?:/tcp)?", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
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
    text = value.strip() if isinstance(value, str) else ""
    if _DURATION.fullmatch(text):
        parts = _DURATION_PART.findall(text)
        seconds = sum(float(number) * _SECONDS[unit.lower()] for number, unit in parts)
    elif _NUMBER.fullmatch(text) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    ):
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: use seconds or e.g. 30s, 5m, 1h30m, 250ms")
    return seconds


def parse_app_spec(text: str, file: str = SPEC_FILE, default_name: str = "app") -> AppSpec:
    """The spec in `text`, or `SpecErrors` with every problem found, sorted by line.

    `default_name` is the app name used when the file has no `name`; the caller vouches
    for it (settings.py checks repository names), so it is not validated here.
    """
    parser = _Parser(file)
    spec = parser.parse(text, default_name)
    if spec is None or parser.errors:
        raise SpecErrors(sorted(parser.errors, key=lambda e: e.line or 0))
    return spec


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
    names |= {_STR: "a string", _TAG + "timestamp": "a date"}
    kind = names.get(node.tag, f"a {node.tag} value")
    return kind if node.tag == _NULL else f"{kind} ({node.value})"


def _is_bind(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or "/" in source


# --- scalar converters: a value node in, a Python value out, or BadValue -------------------


def _text(node: Node) -> str:
    if _is(node, *_TEXT_TAGS):
        return str(node.value)
    raise BadValue(f"expected a string, got {_kind(node)}")


def _int(node: Node, minimum: int = 0, maximum: int | None = None) -> int:
    if not isinstance(node, ScalarNode) or node.tag != _INT:
        raise BadValue(f"expected a whole number, got {_kind(node)}")
    value = _CONSTRUCTOR.construct_yaml_int(node)
    if value < minimum or (maximum is not None and value > maximum):
        most = f" and at most {maximum}" if maximum is not None else ""
        raise BadValue(f"must be at least {minimum}{most}")
    return value


def _quantity(node: Node, example: str) -> str | int:
    """A YAML integer as an int, a string or float as written; for parse_duration/memory."""
    if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
        raise BadValue(f"expected something like {example}, got {_kind(node)}")
    return _CONSTRUCTOR.construct_yaml_int(node) if node.tag == _INT else str(node.value)


def _duration(node: Node, positive: bool = False) -> float:
    try:
        seconds = parse_duration(_quantity(node, "30s"))
    except ValueError as exc:
        raise BadValue(str(exc)) from None
    if positive and seconds == 0:
        raise BadValue("must be longer than 0s")
    return seconds


def _memory(node: Node) -> int:
    try:
        size = parse_memory(_quantity(node, "256m"))
    except ValueError as exc:
        raise BadValue(str(exc)) from None
    if size < MIN_MEMORY:
        raise BadValue("must be at least 4m")
    return size


def _cpus(node: Node) -> float:
    text = node.value.strip() if _is(node, _STR, _INT, _FLOAT) else ""
    if not _NUMBER.fullmatch(text) or float(text) <= 0:
        raise BadValue(f"expected a number above 0, got {_kind(node)}")
    return float(text)


def _choice(node: Node, choices: tuple[str, ...]) -> str:
    if (value := _text(node)) not in choices:
        raise BadValue(f"must be one of: {', '.join(choices)}")
    return value


def _timezone(node: Node) -> str:
    try:
        return ZoneInfo(_text(node)).key
    except (KeyError, ValueError, OSError):  # not found, not a zone name, a directory
        raise BadValue(f"unknown time zone {node.value!r}; try e.g. Europe/Paris") from None


def _app_name(node: Node) -> str:
    if not valid_app_name(value := _text(node)):
        raise BadValue("use up to 40 of a-z, 0-9 and single '-', starting and ending alphanumeric")
    return value


def _image(node: Node) -> str:
    if not (value := _text(node)) or any(c.isspace() for c in value):
        raise BadValue("expected an image reference like busybox:1.36")
    return value


def _absolute(node: Node) -> str:
    if not (value := _text(node)).startswith("/"):
        raise BadValue("must start with '/'")
    return value


def _inside(node: Node, where: str = "the repository") -> str:
    """A relative POSIX path that stays inside `where` after normalisation, normalised."""
    value = _text(node)
    norm = posixpath.normpath(value)
    if value.startswith("/") or norm == ".." or norm.startswith("../"):
        raise BadValue(f"{value!r} is not a relative path inside {where}")
    return norm


class _Parser:
    """Walks one document; every problem goes to `errors` and parsing carries on."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[SpecError] = []

    def error(self, node: Node | None, field: str | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.errors.append(SpecError(self.file, line, field or None, message))

    def _try(self, convert: Callable[..., T], node: Node, path: str, /, **options: Any) -> T | None:
        try:
            return convert(node, **options)
        except BadValue as exc:
            self.error(node, path, str(exc))
            return None

    def _get(
        self, f: _Fields, key: str, convert: Callable[..., T], default: D, /, **options: Any
    ) -> T | D:
        """`convert(value node, **options)` when `key` is set and valid, else `default`."""
        if key not in f.items:
            return default
        value = self._try(convert, f.items[key][1], f.at(key), **options)
        return default if value is None else value

    def _section(
        self, f: _Fields, key: str, parse: Callable[..., T], default: D, /, **options: Any
    ) -> T | D:
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
        service_keys = {key: nodes for key, nodes in top.items.items() if key in SERVICE_KEYS}
        if "services" in top.items:
            services = self._section(top, "services", self._services, {})
            for key, (key_node, _) in service_keys.items():
                self.error(key_node, key, "not allowed next to 'services'; move it to a service")
        elif service_keys:  # the single-service shorthand
            services = {"app": self._service("app", _Fields("", service_keys), root)}
        else:
            self.error(root, "services", "required (or 'image' or 'build' for a single service)")
            services = {}
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

    def _entries(self, node: MappingNode, path: str) -> list[_Entry]:
        """The key/value pairs of `node`; duplicate and non-string keys are reported."""
        entries: dict[str, _Entry] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                message = "merge keys (<<) are not supported; alias a whole value instead"
                self.error(key_node, _join(path, "<<"), message)
            elif not isinstance(key_node, ScalarNode):  # `ON:` or `null:` keys keep their text
                self.error(key_node, path, f"keys must be names, got {_kind(key_node)}")
            elif key_node.value in entries:
                first = entries[key_node.value][1].start_mark.line + 1
                message = f"duplicate key (first defined on line {first})"
                self.error(key_node, _join(path, key_node.value), message)
            else:
                entries[key_node.value] = (key_node.value, key_node, value_node)
        return list(entries.values())

    def _mapping(self, node: Node, path: str) -> list[_Entry]:
        if not isinstance(node, MappingNode):
            raise BadValue(f"expected a mapping, got {_kind(node)}")
        return self._entries(node, path)

    def _known(self, entries: list[_Entry], path: str, allowed: tuple[str, ...]) -> _Fields:
        """Report hostile and unknown keys; keep the allowed ones that have a value."""
        items: dict[str, tuple[Node, Node]] = {}
        for key, key_node, value_node in entries:
            if key in HOSTILE_KEYS or (
                key == "network" and _is(value_node, _STR) and value_node.value == "host"
            ):
                self.error(key_node, _join(path, key), HOST_POWER)
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"expected {', '.join(allowed)}"
                self.error(key_node, _join(path, key), f"unknown key; {hint}")
            elif not _is(value_node, _NULL):
                items[key] = (key_node, value_node)
        return _Fields(path, items)

    def _fields(self, node: Node, path: str, allowed: tuple[str, ...]) -> _Fields:
        return self._known(self._mapping(node, path), path, allowed)

    # --- collections ----------------------------------------------------------------------

    def _string_map(self, node: Node, path: str) -> dict[str, str]:
        """env and build.args: shell-variable names; booleans become "true"/"false"."""
        result: dict[str, str] = {}
        for key, key_node, value_node in self._mapping(node, path):
            field = _join(path, key)
            if not _ENV_KEY.fullmatch(key):
                message = "invalid name: use A-Z, a-z, 0-9 and _, not starting with a digit"
                self.error(key_node, field, message)
            elif _is(value_node, _NULL):
                self.error(value_node, field, 'has no value; write "" for an empty string')
            elif _is(value_node, _BOOL):
                result[key] = "true" if value_node.value.lower() in _TRUE else "false"
            elif (text := self._try(_text, value_node, field)) is not None:
                result[key] = text
        return result

    def _command(self, node: Node, path: str) -> tuple[str, ...]:
        """A list of strings as is, or one string run by `/bin/sh -c`."""
        if isinstance(node, SequenceNode) and node.value:
            items = [self._try(_text, item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            return tuple(item or "" for item in items)
        if not _is(node, _STR) or not node.value.strip():
            raise BadValue(f"expected a non-empty list of strings or string, got {_kind(node)}")
        return ("/bin/sh", "-c", node.value)

    def _ports(self, node: Node, path: str) -> tuple[int, ...]:
        if not isinstance(node, SequenceNode):
            raise BadValue(f"expected a list of port numbers, got {_kind(node)}")
        ports: list[int] = []
        for i, item in enumerate(node.value):
            text = item.value.strip() if _is(item, _INT, _STR) else ""
            match = _PORT.fullmatch(text)
            if ":" in text:
                self.error(item, f"{path}[{i}]", "publishing host ports is not allowed")
            elif match is None or not 1 <= int(match[1]) <= 65535:
                self.error(item, f"{path}[{i}]", f"expected a port 1-65535, got {_kind(item)}")
            elif int(match[1]) in ports:
                self.error(item, f"{path}[{i}]", f"duplicate port {match[1]}")
            else:
                ports.append(int(match[1]))
        return tuple(ports)

    def _volumes(self, node: Node, path: str) -> dict[str, str]:
        """`{name: /target}` or `["name:/target"]`; a path as the source is a bind mount."""
        mounts: list[tuple[str, str | None, Node, Node, str, str]] = []  # source, target,
        if isinstance(node, SequenceNode):  # their nodes and their field paths
            for i, item in enumerate(node.value):
                if (text := self._try(_text, item, f"{path}[{i}]")) is not None:
                    source, _, dest = text.partition(":")
                    mounts.append((source, dest, item, item, f"{path}[{i}]", f"{path}[{i}]"))
        else:
            for source, key_node, value_node in self._mapping(node, path):
                field = _join(path, source)
                target = self._try(_text, value_node, field)
                mounts.append((source, target, key_node, value_node, path, field))
        volumes: dict[str, str] = {}
        for source, target, source_node, target_node, source_field, target_field in mounts:
            if _is_bind(source):
                self.error(source_node, source_field, f"{BIND_MOUNT} (not {source!r})")
            elif not _VOLUME_NAME.fullmatch(source):
                message = f"invalid volume name {source!r}: use a-z, 0-9, '_', '.', '-'"
                self.error(source_node, source_field, message)
            elif source in volumes:
                self.error(source_node, source_field, f"volume {source!r} is mounted twice")
            elif target is None:
                continue  # already reported
            elif ":" in target:
                self.error(target_node, target_field, "mount options are not supported")
            elif not target.startswith("/") or target == "/":
                self.error(target_node, target_field, "expected an absolute path below /")
            elif target in volumes.values():
                self.error(target_node, target_field, f"another volume is mounted on {target}")
            else:
                volumes[source] = target
        return volumes

    # --- sections -------------------------------------------------------------------------

    def _services(self, node: Node, path: str) -> dict[str, ServiceSpec]:
        services: dict[str, ServiceSpec] = {}
        for name, key_node, value_node in self._mapping(node, path):
            field = _join(path, name)
            if not _SERVICE_NAME.fullmatch(name):
                message = "use at most 30 of a-z, 0-9 and '-', starting and ending alphanumeric"
                self.error(key_node, field, message)
            fields: _Fields | None = _Fields(field, {})
            if not _is(value_node, _NULL):
                fields = self._try(
                    self._fields, value_node, field, path=field, allowed=SERVICE_KEYS
                )
            # A stand-in keeps the name known (for cron.service) when the value is not a mapping.
            services[name] = self._service(name, fields, key_node) if fields else ServiceSpec(name)
        if not services:
            raise BadValue("needs at least one service")
        return services

    def _service(self, name: str, f: _Fields, anchor: Node) -> ServiceSpec:
        if "image" in f.items and "build" in f.items:
            self.error(f.items["build"][0], f.at("build"), "use either image or build, not both")
        elif "image" not in f.items and "build" not in f.items:
            self.error(anchor, f.path, f"service {name!r} needs an image or a build")
        ports = self._section(f, "ports", self._ports, ())
        return ServiceSpec(
            name=name,
            image=self._get(f, "image", _image, None),
            build=self._section(f, "build", self._build, None),
            command=self._section(f, "command", self._command, None),
            entrypoint=self._section(f, "entrypoint", self._command, None),
            env=self._section(f, "env", self._string_map, {}),
            ports=ports,
            volumes=self._section(f, "volumes", self._volumes, {}),
            healthcheck=self._section(f, "healthcheck", self._healthcheck, None, ports=ports),
            resources=self._section(f, "resources", self._resources, Resources()),
            user=self._get(f, "user", _text, None),
            working_dir=self._get(f, "working_dir", _absolute, None),
        )

    def _build(self, node: Node, path: str) -> BuildSpec:
        """A mapping, or a string giving the context; the Dockerfile is inside the context."""
        if isinstance(node, ScalarNode):
            return BuildSpec(context=_inside(node))
        f = self._fields(node, path, BUILD_KEYS)
        context = self._get(f, "context", _inside, ".")
        dockerfile = self._get(f, "dockerfile", _inside, "Dockerfile", where="the build context")
        if dockerfile == ".":
            self.error(f.items["dockerfile"][1], f.at("dockerfile"), "must name a file")
        return BuildSpec(context, dockerfile, self._section(f, "args", self._string_map, {}))

    def _healthcheck(self, node: Node, path: str, ports: tuple[int, ...]) -> HealthCheck:
        f = self._fields(node, path, HEALTH_KEYS)
        http = self._get(f, "http", _absolute, None)
        port = self._get(f, "port", _int, None, minimum=1, maximum=65535)
        if "http" in f.items and "command" in f.items:
            self.error(f.items["command"][0], f.at("command"), "use either http or command")
        elif "http" not in f.items and "command" not in f.items:
            self.error(node, path, "needs 'http' (a path) or 'command'")
        elif "port" in f.items and "http" not in f.items:
            self.error(f.items["port"][0], f.at("port"), "only applies to an http check")
        elif "http" in f.items and "port" not in f.items:
            if not ports:
                self.error(f.items["http"][0], f.at("port"), "required: the service has no ports")
            port = ports[0] if ports else None
        return HealthCheck(
            http=http,
            port=port,
            command=self._section(f, "command", self._command, None),
            interval=self._get(f, "interval", _duration, 2.0, positive=True),
            timeout=self._get(f, "timeout", _duration, 2.0, positive=True),
            retries=self._get(f, "retries", _int, 3, minimum=1),
            start_period=self._get(f, "start_period", _duration, 60.0),
        )

    def _resources(self, node: Node, path: str) -> Resources:
        f = self._fields(node, path, RESOURCE_KEYS)
        return Resources(self._get(f, "memory", _memory, None), self._get(f, "cpus", _cpus, None))

    def _cron(self, node: Node, path: str, services: dict[str, ServiceSpec]) -> CronSettings:
        f = self._fields(node, path, CRON_KEYS)
        # With no valid services (already reported) there is nothing to check the name against.
        service = (
            self._get(f, "service", _choice, None, choices=tuple(services)) if services else None
        )
        concurrency = self._get(f, "concurrency", _choice, "forbid", choices=CONCURRENCY)
        return CronSettings(
            service=service,
            user=self._get(f, "user", _text, "root"),
            timezone=self._get(f, "timezone", _timezone, "UTC"),
            timeout=self._get(f, "timeout", _duration, 3600.0, positive=True),
            concurrency=cast(ConcurrencyPolicy, concurrency),
            retries=self._get(f, "retries", _int, 0),
            jitter=self._get(f, "jitter", _duration, 0.0),
            pause_after_failures=self._get(f, "pause_after_failures", _int, None, minimum=1),
            starting_deadline=self._get(f, "starting_deadline", _duration, 300.0, positive=True),
            history=self._get(f, "history", _int, 100),
        )

    def _preview(self, node: Node, path: str) -> PreviewSettings:
        f = self._fields(node, path, ("env",))
        return PreviewSettings(env=self._section(f, "env", self._string_map, {}))
