"""Parse and validate a branch's `.hoody/app.yaml` into a frozen `model.AppSpec`.

The file comes from any branch or pull request, so it is untrusted input that decides
what runs on our Docker host. It is checked here, once, before any other layer sees it:
unknown keys, types and ranges, and above all anything that would give a branch power
over the host (privileged mode, host namespaces, devices, bind mounts, build contexts
outside the repository). Problems are collected rather than raised one at a time, each
naming the file, the 1-based line and the dotted field path, so an author can fix the
whole file in one go: `.hoody/app.yaml:7: services.web.privileged: not allowed: ...`.

This module is the schema of the file; walking YAML nodes (line numbers, duplicate and
unknown keys, scalar converters) is `yamlnodes.py`.
"""

from __future__ import annotations

import re
from typing import cast

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.core.errors import BadValue, SpecErrors
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
from reconciler.core.yamlnodes import (
    INT,
    NULL,
    STR,
    Fields,
    NodeReader,
    as_absolute,
    as_choice,
    as_cpus,
    as_duration,
    as_inside,
    as_int,
    as_memory,
    as_text,
    as_timezone,
    describe,
    is_tag,
    join_path,
    parse_duration,
    parse_memory,
)

__all__ = ["parse_app_spec", "parse_duration", "parse_memory"]

HOST_POWER = "not allowed: it would give a branch power over the host"
BIND_MOUNT = "bind mounts are not allowed; use a named volume"

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

_SERVICE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?")
_VOLUME_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_PORT = re.compile(r"(\d{1,5})(?:/tcp)?", re.IGNORECASE)


def parse_app_spec(text: str, file: str = SPEC_FILE, default_name: str = "app") -> AppSpec:
    """The spec in `text`, or `SpecErrors` with every problem found, sorted by line.

    `default_name` is the app name used when the file has no `name`; the caller vouches
    for it (settings.py checks repository names), so it is not validated here.
    """
    parser = _SpecParser(file)
    spec = parser.parse(text, default_name)
    if spec is None or parser.errors:
        raise SpecErrors(sorted(parser.errors, key=lambda e: e.line or 0))
    return spec


def _is_bind(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or "/" in source


def _app_name(node: Node) -> str:
    if not valid_app_name(value := as_text(node)):
        raise BadValue("use up to 40 of a-z, 0-9 and single '-', starting and ending alphanumeric")
    return value


def _image(node: Node) -> str:
    if not (value := as_text(node)) or any(c.isspace() for c in value):
        raise BadValue("expected an image reference like busybox:1.36")
    return value


class _SpecParser(NodeReader):
    def refused(self, key: str, value: Node) -> str | None:
        if key in HOSTILE_KEYS or (
            key == "network" and is_tag(value, STR) and value.value == "host"
        ):
            return HOST_POWER
        return None

    def parse(self, text: str, default_name: str) -> AppSpec | None:
        root = self.compose(text)
        if root is None:
            return None
        if not isinstance(root, MappingNode):
            self.error(root, None, f"expected a mapping of settings, got {describe(root)}")
            return None
        top = self.known(self.entries(root, ""), "", TOP_KEYS + SERVICE_KEYS)
        name = self.get(top, "name", _app_name, None)
        service_keys = {key: nodes for key, nodes in top.items.items() if key in SERVICE_KEYS}
        if "services" in top.items:
            services = self.section(top, "services", self._services, {})
            for key, (key_node, _) in service_keys.items():
                self.error(key_node, key, "not allowed next to 'services'; move it to a service")
        elif service_keys:  # the single-service shorthand
            services = {"app": self._service("app", Fields("", service_keys), root)}
        else:
            self.error(root, "services", "required (or 'image' or 'build' for a single service)")
            services = {}
        return AppSpec(
            name=name or default_name,
            services=services,
            cron=self.section(top, "cron", self._cron, CronSettings(), services=services),
            preview=self.section(top, "preview", self._preview, PreviewSettings()),
        )

    def _ports(self, node: Node, path: str) -> tuple[int, ...]:
        if not isinstance(node, SequenceNode):
            raise BadValue(f"expected a list of port numbers, got {describe(node)}")
        ports: list[int] = []
        for i, item in enumerate(node.value):
            text = item.value.strip() if is_tag(item, INT, STR) else ""
            match = _PORT.fullmatch(text)
            if ":" in text:
                self.error(item, f"{path}[{i}]", "publishing host ports is not allowed")
            elif match is None or not 1 <= int(match[1]) <= 65535:
                self.error(item, f"{path}[{i}]", f"expected a port 1-65535, got {describe(item)}")
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
                if (text := self.attempt(as_text, item, f"{path}[{i}]")) is not None:
                    source, _, dest = text.partition(":")
                    mounts.append((source, dest, item, item, f"{path}[{i}]", f"{path}[{i}]"))
        else:
            for source, key_node, value_node in self.mapping(node, path):
                field = join_path(path, source)
                target = self.attempt(as_text, value_node, field)
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
        for name, key_node, value_node in self.mapping(node, path):
            field = join_path(path, name)
            if not _SERVICE_NAME.fullmatch(name):
                message = "use at most 30 of a-z, 0-9 and '-', starting and ending alphanumeric"
                self.error(key_node, field, message)
            fields: Fields | None = Fields(field, {})
            if not is_tag(value_node, NULL):
                fields = self.attempt(
                    self.fields, value_node, field, path=field, allowed=SERVICE_KEYS
                )
            # A stand-in keeps the name known (for cron.service) when the value is not a mapping.
            services[name] = self._service(name, fields, key_node) if fields else ServiceSpec(name)
        if not services:
            raise BadValue("needs at least one service")
        return services

    def _service(self, name: str, f: Fields, anchor: Node) -> ServiceSpec:
        if "image" in f.items and "build" in f.items:
            self.error(f.items["build"][0], f.at("build"), "use either image or build, not both")
        elif "image" not in f.items and "build" not in f.items:
            self.error(anchor, f.path, f"service {name!r} needs an image or a build")
        ports = self.section(f, "ports", self._ports, ())
        return ServiceSpec(
            name=name,
            image=self.get(f, "image", _image, None),
            build=self.section(f, "build", self._build, None),
            command=self.section(f, "command", self.command, None),
            entrypoint=self.section(f, "entrypoint", self.command, None),
            env=self.section(f, "env", self.string_map, {}),
            ports=ports,
            volumes=self.section(f, "volumes", self._volumes, {}),
            healthcheck=self.section(f, "healthcheck", self._healthcheck, None, ports=ports),
            resources=self.section(f, "resources", self._resources, Resources()),
            user=self.get(f, "user", as_text, None),
            working_dir=self.get(f, "working_dir", as_absolute, None),
        )

    def _build(self, node: Node, path: str) -> BuildSpec:
        """A mapping, or a string giving the context; the Dockerfile is inside the context."""
        if isinstance(node, ScalarNode):
            return BuildSpec(context=as_inside(node))
        f = self.fields(node, path, BUILD_KEYS)
        context = self.get(f, "context", as_inside, ".")
        dockerfile = self.get(f, "dockerfile", as_inside, "Dockerfile", where="the build context")
        if dockerfile == ".":
            self.error(f.items["dockerfile"][1], f.at("dockerfile"), "must name a file")
        return BuildSpec(context, dockerfile, self.section(f, "args", self.string_map, {}))

    def _healthcheck(self, node: Node, path: str, ports: tuple[int, ...]) -> HealthCheck:
        f = self.fields(node, path, HEALTH_KEYS)
        http = self.get(f, "http", as_absolute, None)
        port = self.get(f, "port", as_int, None, minimum=1, maximum=65535)
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
            command=self.section(f, "command", self.command, None),
            interval=self.get(f, "interval", as_duration, 2.0, positive=True),
            timeout=self.get(f, "timeout", as_duration, 2.0, positive=True),
            retries=self.get(f, "retries", as_int, 3, minimum=1),
            start_period=self.get(f, "start_period", as_duration, 60.0),
        )

    def _resources(self, node: Node, path: str) -> Resources:
        f = self.fields(node, path, RESOURCE_KEYS)
        return Resources(self.get(f, "memory", as_memory, None), self.get(f, "cpus", as_cpus, None))

    def _cron(self, node: Node, path: str, services: dict[str, ServiceSpec]) -> CronSettings:
        f = self.fields(node, path, CRON_KEYS)
        # With no valid services (already reported) there is nothing to check the name against.
        service = (
            self.get(f, "service", as_choice, None, choices=tuple(services)) if services else None
        )
        concurrency = self.get(f, "concurrency", as_choice, "forbid", choices=CONCURRENCY)
        return CronSettings(
            service=service,
            user=self.get(f, "user", as_text, "root"),
            timezone=self.get(f, "timezone", as_timezone, "UTC"),
            timeout=self.get(f, "timeout", as_duration, 3600.0, positive=True),
            concurrency=cast(ConcurrencyPolicy, concurrency),
            retries=self.get(f, "retries", as_int, 0),
            jitter=self.get(f, "jitter", as_duration, 0.0),
            pause_after_failures=self.get(f, "pause_after_failures", as_int, None, minimum=1),
            starting_deadline=self.get(f, "starting_deadline", as_duration, 300.0, positive=True),
            history=self.get(f, "history", as_int, 100),
        )

    def _preview(self, node: Node, path: str) -> PreviewSettings:
        f = self.fields(node, path, ("env",))
        return PreviewSettings(env=self.section(f, "env", self.string_map, {}))
