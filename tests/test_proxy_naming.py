"""Proxy host labels: one DNS label per (environment, service, port), and a service host
can never be another environment's plain host (property tests, hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.model import Ref
from reconciler.core.naming import (
    env_name,
    host_labels,
    is_dns_label,
    is_service_host_label,
    service_host_label,
)

# Small alphabets make near-misses (a/b vs a-b, hex-looking slugs) frequent.
branches = st.text(alphabet="ab0f-/_A", min_size=1, max_size=70)
apps = st.from_regex(r"[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,12}", fullmatch=True)
services = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)


@st.composite
def env_names(draw: st.DrawFn) -> str:
    app = draw(apps)
    if "--" in app:  # not a valid app name (settings refuse it)
        app = app.replace("--", "-")
    if draw(st.booleans()):
        n = draw(st.integers(min_value=1, max_value=10**6))
        return env_name(Ref(f"refs/pull/{n}/head", "0" * 40, "pr", n), app)
    return env_name(Ref(f"refs/heads/{draw(branches)}", "0" * 40), app)


def test_examples() -> None:
    assert service_host_label("main-shop", "web", 8080) == "main-shop--8080-web"
    assert host_labels("main-shop", [("web", (8080, 9090)), ("api", (3000,))]) == [
        ("main-shop", "web", 8080),
        ("main-shop--8080-web", "web", 8080),
        ("main-shop--9090-web", "web", 9090),
        ("main-shop--3000-api", "api", 3000),
    ]
    assert host_labels("main-shop", [("worker", ())]) == []
    long = service_host_label("x" * 60, "web", 8080)
    assert len(long) <= 63 and "--h" in long and is_service_host_label(long)


@settings(max_examples=600)
@given(env_names(), services, ports)
def test_service_hosts_are_labels_and_never_an_environment_name(
    env: str, service: str, port: int
) -> None:
    label = service_host_label(env, service, port)
    assert is_dns_label(label), label
    assert is_service_host_label(label)
    assert not is_service_host_label(env), env  # so no environment is ever called that


@settings(max_examples=600)
@given(env_names(), env_names(), services, ports)
def test_a_service_host_never_equals_another_environments_host(
    env: str, other: str, service: str, port: int
) -> None:
    assert service_host_label(env, service, port) != other


@settings(max_examples=500)
@given(env_names(), services, ports, env_names(), services, ports)
def test_distinct_service_ports_get_distinct_hosts(
    e1: str, s1: str, p1: int, e2: str, s2: str, p2: int
) -> None:
    if (e1, s1, p1) != (e2, s2, p2):
        assert service_host_label(e1, s1, p1) != service_host_label(e2, s2, p2)


@settings(max_examples=500)
@given(env_names(), st.sampled_from(["web", "w", "0123456789", "a--b"]), st.sampled_from([1, 80]))
def test_near_misses_across_envs_and_services(env: str, service: str, port: int) -> None:
    # e.g. env "a" + service "b-c" vs env "a--b" (hashed) + service "c": the port sits
    # right after the first "--" followed by digits and "-", so the split is unique.
    label = service_host_label(env, service, port)
    for other_env in (f"{env}-{port}", env.rsplit("-", 1)[0]):
        for other_service in (service, f"{port}-{service}", f"x-{service}"):
            if (other_env, other_service) != (env, service):
                assert service_host_label(other_env, other_service, port) != label
