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
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .model import AppSpec, DesiredEnvironment, DesiredService, Ref, ServiceSpec
from .naming import env_name
from .settings import RepoSettings


@dataclass(frozen=True)
class RefSource:
    """What one ref's commit holds, as read from git."""

    ref: Ref
    spec: AppSpec | None = None
    error: str | None = None  # why the spec cannot be used (file:line: ...)
    crontab: str | None = None
    contexts: Mapping[str, str] = field(default_factory=dict)  # service -> context tree id


@dataclass(frozen=True)
class Held:
    ref: str
    reason: str


@dataclass(frozen=True)
class DesiredState:
    repo: str
    environments: Mapping[str, DesiredEnvironment]
    held: tuple[Held, ...] = ()
    # False when the ref listing cannot be trusted for removals (failed fetch, empty list).
    complete: bool = True
    note: str = ""

    def held_refs(self) -> set[str]:
        return {h.ref for h in self.held}


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
        services[svc.name] = DesiredService(svc, image, env, keyed_hash(key, material))
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
    )


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
            held.append(Held(source.ref.name, source.error or "no spec"))
            continue
        ckey = (repo.name, source.ref.name, source.ref.commit)
        env = cache.get(ckey) if cache is not None else None
        if env is None:
            env = desired_environment(repo, source, key)
            if cache is not None:
                cache[ckey] = env
        if env.name in envs:
            other = envs[env.name].ref.name
            held.append(
                Held(source.ref.name, f"environment name {env.name} already used by {other}")
            )
            continue
        envs[env.name] = env
    if complete and not sources:
        complete, note = False, "the ref listing is empty; nothing will be pruned"
    return DesiredState(repo.name, envs, tuple(held), complete, note)
