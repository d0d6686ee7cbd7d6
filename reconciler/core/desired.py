"""Refs + what their commits hold + repo policy → the environments that should exist.

Pure: the controller reads git (specs, crontabs, build-context tree ids) and hands the
results in as `RefSource`s. A ref whose spec cannot be used is *held*: nothing of it is
desired, and nothing it already has may be torn down (invariant 2).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from reconciler.core.model import AppSpec, DesiredEnvironment, DesiredService, Ref, ServiceSpec
from reconciler.core.naming import env_name, pull_request_namespace
from reconciler.core.settings import PullRequestSettings, RepoSettings


@dataclass(frozen=True)
class RefSource:
    """What one ref's commit holds, as read from git."""

    ref: Ref
    spec: AppSpec | None = None
    error: str | None = None  # why the spec cannot be used (file:line: ...)
    crontab: str | None = None
    contexts: Mapping[str, str] = field(default_factory=dict)  # service -> context tree id
    secrets: bool = True  # False for fork PRs: the repo's env never reaches them
    missing: bool = False  # the commit has no spec file at all (`error` says where)
    bases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # service -> FROM images
    crontab_error: str | None = None  # why the crontab cannot be used as a whole


class HoldKind(StrEnum):
    NO_SPEC = "no_spec"  # no spec file: a branch without one simply has no environment
    INVALID = "invalid"  # the spec or a build context cannot be used
    NAME_TAKEN = "name_taken"  # another ref already has the environment name
    PR_UNKNOWN = "pr_unknown"  # the pull request's state cannot be read


@dataclass(frozen=True)
class Held:
    """A ref nothing of which is desired and nothing of which may be torn down."""

    ref: str
    reason: str
    kind: HoldKind = HoldKind.INVALID


@dataclass(frozen=True)
class DesiredState:
    repo: str
    environments: Mapping[str, DesiredEnvironment]
    held: tuple[Held, ...] = ()
    # False when the ref listing cannot be trusted for removals (failed fetch, empty list).
    complete: bool = True
    note: str = ""


def branch_selected(repo: RepoSettings, ref: Ref) -> bool:
    if ref.kind != "branch":
        return False
    return any(fnmatch.fnmatchcase(ref.short, pattern) for pattern in repo.branches)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def keyed_hash(key: bytes, value: Any) -> str:
    """HMAC over canonical JSON: stable across processes, and a label never lets anyone
    test a guess of a secret value (the key lives in state_dir)."""
    return hmac.new(key, canonical_json(value).encode(), hashlib.sha256).hexdigest()[:32]


def build_image_tag(repo: str, service: ServiceSpec, context_tree: str) -> str:
    assert service.build is not None
    ident = canonical_json(
        {"tree": context_tree, "dockerfile": service.build.dockerfile, "args": service.build.args}
    )
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return f"hoody/{repo}-{service.name}:{digest}"


def resolve_env(
    service: ServiceSpec, app: AppSpec, ref: Ref, repo_env: Mapping[str, str]
) -> dict[str, str]:
    env = dict(service.env)
    if ref.kind == "pr":
        env.update(app.preview.env)
    env.update(repo_env)  # the server's values win over anything a branch says
    return env


def desired_environment(
    repo: RepoSettings, source: RefSource, key: bytes, inject_secrets: bool = True
) -> DesiredEnvironment:
    assert source.spec is not None
    app = source.spec
    name = env_name(source.ref, app.name)
    repo_env = repo.env if inject_secrets else {}
    services: dict[str, DesiredService] = {}
    for svc in app.services.values():
        if svc.build is not None:
            image = build_image_tag(repo.name, svc, source.contexts[svc.name])
        else:
            assert svc.image is not None
            image = svc.image
        env = resolve_env(svc, app, source.ref, repo_env)
        material = asdict(svc)
        material.update(env=env, image=image, build=None, environment=name)
        services[svc.name] = DesiredService(
            svc, image, env, keyed_hash(key, material), tuple(source.bases.get(svc.name, ()))
        )
    env_hash = keyed_hash(key, sorted((n, s.spec_hash) for n, s in services.items()))
    return DesiredEnvironment(
        name=name,
        repo=repo.name,
        ref=source.ref,
        app=app,
        services=services,
        spec_hash=env_hash,
        crontab=source.crontab,
        secret_keys=frozenset(repo_env),
        crontab_error=source.crontab_error,
        fork=not source.secrets,  # secrets are withheld from fork pull requests alone
    )


def pr_ref_name(provider: str, number: int) -> str:
    kind = "merge-requests" if provider == "gitlab" else "pull"
    return f"refs/{kind}/{number}/head"


def build(
    repo: RepoSettings,
    sources: Iterable[RefSource],
    key: bytes,
    complete: bool = True,
    note: str = "",
    cache: dict[tuple[str, str, str], DesiredEnvironment] | None = None,
) -> DesiredState:
    """`cache` (keyed by repo, ref and commit) lets a no-op pass skip re-hashing specs."""
    envs: dict[str, DesiredEnvironment] = {}
    held: list[Held] = []
    sources = list(sources)
    for source in sorted(sources, key=lambda s: s.ref.name):
        if source.spec is None:
            kind = HoldKind.NO_SPEC if source.missing else HoldKind.INVALID
            held.append(Held(source.ref.name, source.error or "no spec", kind))
            continue
        ckey = (repo.name, source.ref.name, source.ref.commit + ("" if source.secrets else "-"))
        env = cache.get(ckey) if cache is not None else None
        if env is None:
            env = desired_environment(repo, source, key, inject_secrets=source.secrets)
            if cache is not None:
                cache[ckey] = env
        taken = pull_request_namespace(env.name) if source.ref.kind != "pr" else None
        if taken is not None:
            held.append(
                Held(
                    source.ref.name,
                    f"environment name {env.name} is reserved for pull request #{taken} "
                    f"({pr_ref_name(repo.provider, taken)}): {source.ref.name} with app name "
                    f"{env.app.name!r} cannot have it; rename the app in .hoody/app.yaml "
                    "or the branch",
                    HoldKind.NAME_TAKEN,
                )
            )
            continue
        if env.name in envs:
            other = envs[env.name].ref.name
            held.append(
                Held(
                    source.ref.name,
                    f"environment name {env.name} already used by {other}",
                    HoldKind.NAME_TAKEN,
                )
            )
            continue
        envs[env.name] = env
    if complete and not sources:
        complete, note = False, "the ref listing is empty; nothing will be pruned"
    return DesiredState(repo.name, envs, tuple(held), complete, note)


def refuse_held_names(
    state: DesiredState, holders: Mapping[str, tuple[str, str | None]]
) -> DesiredState:
    """Environment names are unique across repos: a desired environment whose name another
    repo holds (`holders`: name -> (repo, ref)) is held, naming both refs, and the other
    repo's environment is left alone."""
    taken = {n: h for n, h in holders.items() if n in state.environments}
    if not taken:
        return state
    held = [
        Held(
            env.ref.name,
            f"environment name {name} is already used by repo {taken[name][0]!r} "
            f"({taken[name][1]}); repo {state.repo!r} ({env.ref.name}) cannot have it: "
            "give the app another name in .hoody/app.yaml",
        )
        for name, env in state.environments.items()
        if name in taken
    ]
    keep = {n: e for n, e in state.environments.items() if n not in taken}
    return replace(state, environments=keep, held=state.held + tuple(held))


# -- pull requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequestView:
    """What the source of truth (provider API, else the latest webhook) says of one PR."""

    number: int
    open: bool
    is_fork: bool = False
    draft: bool = False
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrDecision:
    number: int
    ref: str
    selected: bool
    secrets: bool
    message: str


def select_pull_requests(
    policy: PullRequestSettings,
    refs: Iterable[Ref],
    known: Mapping[int, PullRequestView] | None,
    commit_times: Mapping[str, float],
    now: float,
) -> tuple[list[PrDecision], list[Held]]:
    """Which PR heads get an environment. `known` None means the source of truth could not
    be read: every PR is held (kept as it is), never torn down on a guess."""
    decisions: list[PrDecision] = []
    held: list[Held] = []
    for ref in refs:
        if ref.kind != "pr" or ref.pr_number is None:
            continue
        n = ref.pr_number
        if not policy.enabled:
            decisions.append(PrDecision(n, ref.name, False, False, "pull request previews are off"))
            continue
        if known is None:
            why = "pull request state unavailable; environment kept"
            held.append(Held(ref.name, why, HoldKind.PR_UNKNOWN))
            continue
        view = known.get(n)
        if view is None:
            why = "pull request state unknown (no webhook or API answer)"
            held.append(Held(ref.name, why, HoldKind.PR_UNKNOWN))
            continue
        if not view.open:
            decisions.append(PrDecision(n, ref.name, False, False, "closed"))
        elif view.draft and not policy.drafts:
            decisions.append(
                PrDecision(
                    n, ref.name, False, False, "draft: no preview until it is ready for review"
                )
            )
        elif (
            view.is_fork
            and not policy.forks
            and not (policy.approve_label and policy.approve_label in view.labels)
        ):
            how = (
                f"a maintainer can add the label `{policy.approve_label}`"
                if policy.approve_label
                else "fork previews are off"
            )
            decisions.append(
                PrDecision(n, ref.name, False, False, f"from a fork: no preview ({how})")
            )
        elif (
            policy.expire_after is not None
            and ref.commit in commit_times
            and now - commit_times[ref.commit] > policy.expire_after
        ):
            decisions.append(
                PrDecision(
                    n,
                    ref.name,
                    False,
                    False,
                    f"expired: no commit for {policy.expire_after / 3600:g}h; push a commit to "
                    "bring it back",
                )
            )
        else:
            fork_note = " (fork: repository secrets withheld)" if view.is_fork else ""
            decisions.append(PrDecision(n, ref.name, True, not view.is_fork, f"preview{fork_note}"))
    return decisions, held


def apply_cap(
    state: DesiredState, cap: int | None, running: Collection[str]
) -> tuple[DesiredState, list[str]]:
    """At most `cap` environments per repo. Branch environments always stay (the cap is
    for previews); running PR environments keep their place, then PRs by number. Returns
    the new state and the PR environments that wait."""
    if cap is None or len(state.environments) <= cap:
        return state, []
    envs = state.environments.values()
    branches = [e for e in envs if e.ref.kind != "pr"]
    prs = sorted(
        (e for e in envs if e.ref.kind == "pr"),
        key=lambda e: (e.name not in running, e.ref.pr_number or 0),
    )
    room = max(0, cap - len(branches))
    keep = {e.name: e for e in [*branches, *prs[:room]]}
    return replace(state, environments=keep), [e.name for e in prs[room:]]


def apply_repo_limit(
    state: DesiredState, limit: int, running: Collection[str]
) -> tuple[DesiredState, list[str]]:
    """At most `limit` environments per repo, branches and pull requests together
    (`limits.max_environments_per_repo`). Running environments keep their place, then
    branches by ref name, then pull requests by number; the rest wait (nothing running
    is removed for it). Returns the new state and the environments that wait."""
    if len(state.environments) <= limit:
        return state, []
    envs = state.environments.values()
    kept = [e for e in envs if e.name in running]
    order = sorted(
        (e for e in envs if e.name not in running),
        key=lambda e: (e.ref.kind == "pr", e.ref.pr_number or 0, e.ref.name),
    )
    room = max(0, limit - len(kept))
    keep = {e.name: e for e in [*kept, *order[:room]]}
    return replace(state, environments=keep), [e.name for e in order[room:]]
