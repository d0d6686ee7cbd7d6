"""`diff(desired, observed) -> list[Action]`: a pure function, no I/O.

Safety lives here, where it can be tested table-driven: a ref that is held (unreadable
spec) or a listing that cannot be trusted never yields a removal, and a pass that would
remove too much of a repo is turned into no-ops by the mass-prune guard.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from reconciler.core.desired import DesiredState
from reconciler.core.model import (
    Action,
    ActionOp,
    DesiredEnvironment,
    ObservedEnvironment,
    Reason,
)
from reconciler.core.naming import network_name, volume_name
from reconciler.core.settings import PruneSettings


def _drift(desired: DesiredEnvironment, observed: ObservedEnvironment) -> tuple[list[str], str]:
    """Services that must be (re)started and why; empty when the environment is in sync."""
    changed: list[str] = []
    reasons: list[str] = []
    for name, svc in desired.services.items():
        current = [c for c in observed.service_containers(name) if not c.role]
        if not current:
            changed.append(name)
            reasons.append(f"{name}: container missing")
        elif any(c.spec_hash != svc.spec_hash for c in current):
            changed.append(name)
            reasons.append(f"{name}: spec changed")
        elif len(current) > 1:
            changed.append(name)
            reasons.append(f"{name}: {len(current)} containers, expected 1")
        elif not current[0].running:
            changed.append(name)
            reasons.append(f"{name}: container {current[0].status}, restarting")
    extra = sorted({c.service for c in observed.containers} - set(desired.services))
    if extra:
        reasons.append(f"services removed: {', '.join(extra)}")
    leftovers = sorted({c.service for c in observed.containers if c.role} - set(changed))
    if leftovers:
        reasons.append(f"unfinished start of {', '.join(leftovers)} to clean up")
    # One service joins a runtime's shared network (docker), where it has one; an engine
    # removes no network a container uses, so a missing one of its own shows as above.
    if len(desired.services) > 1 and network_name(desired.name) not in observed.networks:
        reasons.append("network missing")
    wanted_volumes = {
        volume_name(desired.name, v) for s in desired.services.values() for v in s.spec.volumes
    }
    missing_volumes = wanted_volumes - set(observed.volumes)
    if missing_volumes:
        reasons.append(f"volumes missing: {', '.join(sorted(missing_volumes))}")
    return changed, "; ".join(reasons)


def diff(
    desired: DesiredState,
    observed: Mapping[str, ObservedEnvironment],
    suspended: Collection[str] = (),
    prune: PruneSettings | None = None,
    allow_mass_prune: bool = False,
) -> list[Action]:
    actions: list[Action] = []
    held = {h.ref: h.reason for h in desired.held}
    for name, want in sorted(desired.environments.items()):
        have = observed.get(name)
        if name in suspended:
            actions.append(
                Action(ActionOp.NOOP, name, "suspended", want, have, why=Reason.SUSPENDED)
            )
        elif have is None:
            actions.append(
                Action(ActionOp.CREATE, name, f"new {want.ref.short}", want, why=Reason.NEW)
            )
        else:
            services, drift = _drift(want, have)
            if drift:
                actions.append(
                    Action(
                        ActionOp.UPDATE, name, drift, want, have, tuple(services), why=Reason.DRIFT
                    )
                )
            else:
                text = f"in sync at {want.commit[:12]}"
                actions.append(Action(ActionOp.NOOP, name, text, want, have, why=Reason.IN_SYNC))
    removals: list[Action] = []
    for name, have in sorted(observed.items()):
        if name in desired.environments:
            continue
        if name in suspended:
            actions.append(
                Action(ActionOp.NOOP, name, "suspended", observed=have, why=Reason.SUSPENDED)
            )
        elif have.ref in held:
            text = f"kept: {held[have.ref]}"
            actions.append(Action(ActionOp.NOOP, name, text, observed=have, why=Reason.HELD))
        elif not desired.complete:
            text = f"kept: {desired.note}"
            actions.append(Action(ActionOp.NOOP, name, text, observed=have, why=Reason.UNTRUSTED))
        else:
            text = f"{have.ref} is gone or no longer selected"
            removals.append(Action(ActionOp.REMOVE, name, text, observed=have, why=Reason.GONE))
    actions.extend(
        guard_mass_prune(removals, len(observed), prune or PruneSettings(), allow_mass_prune)
    )
    return actions


def guard_mass_prune(
    removals: list[Action], existing: int, prune: PruneSettings, allow: bool
) -> list[Action]:
    """Argo CD once deleted every app during a git outage; we refuse such passes whole."""
    if allow or not removals:
        return removals
    if len(removals) <= prune.min_count or len(removals) <= prune.max_fraction * existing:
        return removals
    text = (
        f"kept: pass would remove {len(removals)} of {existing} environments "
        f"(limit {prune.max_fraction:.0%}); nothing removed. Use prune.max_fraction or "
        "`hoody apply --allow-mass-prune` if this is intended"
    )
    return [
        Action(ActionOp.NOOP, a.env, text, observed=a.observed, why=Reason.MASS_PRUNE)
        for a in removals
    ]


def summary(actions: list[Action]) -> dict[str, int]:
    counts = {op.value: 0 for op in ActionOp}
    for a in actions:
        counts[a.op.value] += 1
    return counts


def action_json(a: Action) -> dict[str, Any]:
    """The JSON shape of an action, shared by `hoody plan --json` and `/api/v1/plan`."""
    return {
        "op": a.op.value,
        "env": a.env,
        "reason": a.reason,
        "services": list(a.services),
        "ref": a.desired.ref.name if a.desired else (a.observed.ref if a.observed else None),
        "commit": a.desired.commit if a.desired else None,
    }
