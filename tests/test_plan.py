"""plan.diff is pure: table-driven tests over desired/observed pairs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.core.desired import DesiredState, Held
from reconciler.core.model import (
    Action,
    ActionOp,
    AppSpec,
    DesiredEnvironment,
    DesiredService,
    ObservedContainer,
    ObservedEnvironment,
    Reason,
    Ref,
    ServiceSpec,
)
from reconciler.core.plan import diff
from reconciler.core.settings import PruneSettings


def want(name: str, h: str = "h1", ref: str | None = None) -> DesiredEnvironment:
    svc = ServiceSpec("web", image="busybox:1.36")
    r = Ref(ref or f"refs/heads/{name}", "c" * 40)
    return DesiredEnvironment(
        name,
        "shop",
        r,
        AppSpec(name, {"web": svc}),
        {"web": DesiredService(svc, "busybox:1.36", {}, h)},
        h,
    )


def duo(name: str) -> DesiredEnvironment:
    """Two services: an environment with a network of its own."""
    one = want(name)
    api = ServiceSpec("api", image="busybox:1.36")
    services = {**one.services, "api": DesiredService(api, "busybox:1.36", {}, "h1")}
    return replace(one, app=AppSpec(name, {**one.app.services, "api": api}), services=services)


def have_duo(name: str, network: bool = True) -> ObservedEnvironment:
    web, api = have(name).containers[0], have(name, service="api").containers[0]
    return replace(have(name, network=network), containers=(web, replace(api, id=f"id2-{name}")))


def have(
    name: str,
    h: str = "h1",
    running: bool = True,
    ref: str | None = None,
    role: str = "",
    service: str = "web",
    network: bool = True,
) -> ObservedEnvironment:
    c = ObservedContainer(
        f"id-{name}",
        f"{name}_{service}",
        name,
        service,
        ref or f"refs/heads/{name}",
        "c" * 40,
        h,
        running,
        "running" if running else "exited",
        role,
    )
    return ObservedEnvironment(name, "shop", c.ref, c.commit, (c,), (name,) if network else ())


def state(
    *envs: DesiredEnvironment, held: tuple[Held, ...] = (), complete: bool = True
) -> DesiredState:
    return DesiredState(
        "shop", {e.name: e for e in envs}, held, complete, "" if complete else "fetch failed"
    )


def ops(actions: list[Action]) -> dict[str, tuple[str, str]]:
    return {a.env: (a.op.value, a.reason) for a in actions}


CASES = [
    ("new branch is created", state(want("a")), {}, {"a": "create:new"}),
    ("in sync is a no-op", state(want("a")), {"a": have("a")}, {"a": "noop:in_sync"}),
    ("changed spec updates", state(want("a", "h2")), {"a": have("a")}, {"a": "update:drift"}),
    (
        "stopped container is healed",
        state(want("a")),
        {"a": have("a", running=False)},
        {"a": "update:drift"},
    ),
    (
        "missing network of several services is healed",
        state(duo("a")),
        {"a": have_duo("a", network=False)},
        {"a": "update:drift"},
    ),
    ("several services in sync", state(duo("a")), {"a": have_duo("a")}, {"a": "noop:in_sync"}),
    (
        "one service needs no network of its own (the shared one)",
        state(want("a")),
        {"a": have("a", network=False)},
        {"a": "noop:in_sync"},
    ),
    (
        "leftover next container is cleaned",
        state(want("a")),
        {
            "a": ObservedEnvironment(
                "a",
                "shop",
                "refs/heads/a",
                "c" * 40,
                have("a").containers + have("a", role="next").containers,
                ("a",),
            )
        },
        {"a": "update:drift"},
    ),
    (
        "gone ref is removed",
        state(want("a")),
        {"a": have("a"), "b": have("b")},
        {"a": "noop:in_sync", "b": "remove:gone"},
    ),
    (
        "held ref is kept",
        state(want("a"), held=(Held("refs/heads/b", "bad spec"),)),
        {"a": have("a"), "b": have("b")},
        {"a": "noop:in_sync", "b": "noop:held"},
    ),
    (
        "incomplete listing never removes",
        state(want("a"), complete=False),
        {"a": have("a"), "b": have("b")},
        {"a": "noop:in_sync", "b": "noop:untrusted"},
    ),
]


@pytest.mark.parametrize(
    ("case", "desired", "observed", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_diff(
    case: str,
    desired: DesiredState,
    observed: dict[str, ObservedEnvironment],
    expected: dict[str, str],
) -> None:
    # op and the typed reason: what the controller branches on, never the text
    got = {a.env: f"{a.op.value}:{a.why.value}" for a in diff(desired, observed)}
    assert got == expected


def test_kept_reasons_say_why() -> None:
    result = ops(
        diff(state(held=(Held("refs/heads/b", ".hoody/app.yaml:3: boom"),)), {"b": have("b")})
    )
    assert result["b"] == ("noop", "kept: .hoody/app.yaml:3: boom")


def test_suspended_environment_is_left_alone_both_ways() -> None:
    result = ops(
        diff(state(want("a", "h2")), {"a": have("a"), "b": have("b")}, suspended={"a", "b"})
    )
    assert result == {"a": ("noop", "suspended"), "b": ("noop", "suspended")}
    assert {a.why for a in diff(state(want("a")), {"a": have("a")}, suspended={"a"})} == {
        Reason.SUSPENDED
    }


@pytest.mark.parametrize(
    ("existing", "removing", "allowed", "max_fraction"),
    [
        (10, 5, True, 0.5),  # exactly half: fine
        (10, 6, False, 0.5),  # more than half and more than two: refused
        (3, 2, True, 0.5),  # two or fewer: always fine
        (3, 3, False, 0.5),
        (10, 10, True, 1.0),  # max_fraction 1 allows everything
    ],
)
def test_mass_prune_guard(existing: int, removing: int, allowed: bool, max_fraction: float) -> None:
    keep = [want(f"e{i}") for i in range(existing - removing)]
    observed = {f"e{i}": have(f"e{i}") for i in range(existing)}
    actions = diff(state(*keep), observed, prune=PruneSettings(max_fraction=max_fraction))
    removes = [a for a in actions if a.op is ActionOp.REMOVE]
    assert len(removes) == (removing if allowed else 0)
    if not allowed:
        assert any("nothing removed" in a.reason for a in actions)
        kept = [a for a in actions if a.env not in {e.name for e in keep}]
        assert {a.why for a in kept} == {Reason.MASS_PRUNE} and all(a.why.kept for a in kept)
        forced = diff(state(*keep), observed, allow_mass_prune=True)
        assert len([a for a in forced if a.op is ActionOp.REMOVE]) == removing
