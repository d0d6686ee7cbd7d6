"""Random mutations of a full app spec: the parser never crashes (it answers an AppSpec or
SpecErrors, nothing else) and never accepts a key outside the documented schema."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.errors import SpecError
from reconciler.core.model import AppSpec
from reconciler.core.spec import parse_app_spec

# The documented schema (README, "App spec"), written out here on its own: keys per
# mapping; FREE marks mappings whose keys are the author's (names, variables).
FREE = "free"
SERVICE = {
    "image": None,
    "build": {"context": None, "dockerfile": None, "args": FREE},
    "command": None,
    "entrypoint": None,
    "env": FREE,
    "ports": None,
    "volumes": FREE,
    "healthcheck": {
        k: None
        for k in ("http", "port", "command", "interval", "timeout", "retries", "start_period")
    },
    "resources": {"memory": None, "cpus": None},
    "user": None,
    "working_dir": None,
}
CRON = {
    k: None
    for k in (
        "service",
        "user",
        "timezone",
        "timeout",
        "concurrency",
        "retries",
        "jitter",
        "pause_after_failures",
        "starting_deadline",
        "history",
    )
}
TOP = {"name": None, "services": "services", "cron": CRON, "preview": {"env": FREE}}

FULL: dict[str, Any] = {
    "name": "shop",
    "services": {
        "web": {
            "image": "busybox:1.36",
            "command": ["httpd", "-f", "-p", "8080"],
            "env": {"GREETING": "hello"},
            "ports": [8080],
            "volumes": {"data": "/data"},
            "healthcheck": {"http": "/", "port": 8080, "interval": "2s", "retries": 3},
            "resources": {"memory": "256m", "cpus": 0.5},
            "user": "1000",
            "working_dir": "/srv",
        },
        "worker": {
            "build": {"context": ".", "dockerfile": "Dockerfile", "args": {"V": "1"}},
            "entrypoint": "run",
        },
    },
    "cron": {"service": "web", "user": "root", "timezone": "UTC", "concurrency": "forbid"},
    "preview": {"env": {"GREETING": "preview"}},
}


def unknown_keys(doc: Any) -> list[str]:
    """Keys of `doc` that the documented schema does not have, as dotted paths."""
    if not isinstance(doc, dict):
        return []
    found: list[str] = []
    # The single-service shorthand documents the service keys at the top level too (the
    # parser refuses them next to `services`, unless empty, which counts as absent).
    allowed = {**TOP, **SERVICE}

    def walk(node: Any, schema: Any, path: str) -> None:
        if not isinstance(node, dict) or schema is None or schema == FREE:
            return
        if schema == "services":
            for name, svc in node.items():
                walk(svc, SERVICE, f"{path}.{name}")
            return
        for key, value in node.items():
            if key not in schema:
                found.append(f"{path}.{key}".lstrip("."))
            else:
                walk(value, schema[key], f"{path}.{key}")

    walk(doc, allowed, "")
    return found


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every mapping inside `doc` (as key paths), the root included."""
    out = [prefix] if isinstance(doc, dict) else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    return out


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


KEYS = st.sampled_from(
    [
        "privileged",
        "network_mode",
        "cap_add",
        "devices",
        "imagee",
        "servics",
        "Image",
        "extra",
        "pids",
        "memory",
        "build",
        "env",
        "cron",
        "<<",
        "1",
        "true",
        "",
    ]
) | st.text(min_size=1, max_size=8)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["/", "../x", "100t", "1e9", "host", "0", "-1", "@every 1s"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
MUTATION = st.tuples(
    st.sampled_from(["add", "set", "delete", "rename"]), KEYS, VALUES, st.integers()
)


def mutate(doc: dict[str, Any], steps: list[tuple[str, str, Any, int]]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for op, key, value, pick in steps:
        targets = paths(doc)
        target = at(doc, targets[pick % len(targets)])
        existing = list(target)
        if op == "add" or not existing:
            target[key] = value
        elif op == "set":
            target[existing[pick % len(existing)]] = value
        elif op == "delete":
            del target[existing[pick % len(existing)]]
        else:
            old = existing[pick % len(existing)]
            target[key] = target.pop(old)
    return doc


def test_the_full_example_is_valid() -> None:
    assert unknown_keys(FULL) == []
    assert isinstance(parse_app_spec(yaml.safe_dump(FULL)), AppSpec)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_specs_never_crash_the_parser_nor_pass_an_unknown_key(
    steps: list[tuple[str, str, Any, int]],
) -> None:
    doc = mutate(FULL, steps)
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        spec = parse_app_spec(text)
    except SpecError as e:
        assert e.render(), "an error names what is wrong"
        return
    assert isinstance(spec, AppSpec)
    assert unknown_keys(doc) == [], f"accepted unknown keys {unknown_keys(doc)} in {text}"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_spec_or_spec_errors(text: str) -> None:
    with contextlib.suppress(SpecError):
        parse_app_spec(text)
