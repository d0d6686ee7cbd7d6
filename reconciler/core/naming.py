"""Environment and object names: deterministic, DNS-1123 labels of at most 63 characters,
and distinct refs never share a name.

Rule (documented in docs/architecture.md):

* A pull request N gets `pr-<N>-<app>`. That form is reserved: a branch whose name would
  have it (branch `pr` with app `2-shop`) is refused (`pull_request_namespace`).
* A branch gets `<slug>-<app>` when the slug is *lossless*: lower-case alphanumerics
  separated by single hyphens, where the branch is exactly the slug with its first
  hyphen written as a slash or not at all (`feature/billing-v2` -> `feature-billing-v2`,
  `main` -> `main`). Every other branch (`Fix_Login`, `fix-login`, `a/b/c`, one that
  would read as a PR name, one too long) gets `<slug>--<hash>-<app>`, where `hash` is
  10 hex digits of the SHA-256 of the full ref. Lossless names never contain `--` and
  app names may not either, so a hashed name can never equal a lossless one.

Docker object names add a suffix with `_`, which never occurs in an environment name:
network `<env>`, container `<env>_<service>`, volume `<env>_<volume>`; the network that
single-service environments share is `hoody_shared`.

Proxy host labels (one DNS label each, under `proxy.domain`): the environment's first
published (service, port) answers at `<env>`; every published (service, port) also at
`<env>--<port>-<service>`, or `<head>--h<10 hex>` when that would exceed 63 characters.
An environment name has at most one `--`, and then followed by 10 hex digits and `-`;
here `--` is followed by a port (1-5 digits, then `-`) or by `h`, neither of which an
environment name can contain, so a service host never equals any environment's host.
"""

from __future__ import annotations

import hashlib
import re

from reconciler.core.model import Ref

MAX_NAME = 63
HASH_LEN = 10
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_PR_LIKE = re.compile(r"^pr-[0-9]+(-|$)")
_PR_NAME = re.compile(r"^pr-([0-9]+)-[a-z0-9]")  # the names of pull request environments
# What follows the `--` of a service host: a port and `-`, or `h` and the hash.
_SERVICE_HOST = re.compile(r"--(?:[0-9]{1,5}-|h[0-9a-f]{" + str(HASH_LEN) + "}$)")


def is_dns_label(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_LABEL.match(name))


def valid_app_name(name: str) -> bool:
    """App names end every environment name, so they must be short labels without `--`."""
    return len(name) <= 40 and bool(_LABEL.match(name)) and "--" not in name


def slugify(text: str) -> str:
    return _NON_ALNUM.sub("-", text.lower()).strip("-")


def ref_hash(ref_name: str) -> str:
    return hashlib.sha256(ref_name.encode("utf-8", "surrogateescape")).hexdigest()[:HASH_LEN]


def _lossless(branch: str, slug: str) -> bool:
    if not slug or _PR_LIKE.match(slug) or "--" in slug:
        return False
    return branch == slug.replace("-", "/", 1)


def env_name(ref: Ref, app: str) -> str:
    """The environment name of `ref` for app `app` (a valid app name)."""
    if ref.kind == "pr" and ref.pr_number is not None:
        return f"pr-{ref.pr_number}-{app}"
    branch = ref.short
    slug = slugify(branch)
    room = MAX_NAME - len(app) - 1
    if _lossless(branch, slug) and len(slug) <= room:
        return f"{slug}-{app}"
    suffix = "--" + ref_hash(ref.name)
    head = slug[: max(0, room - len(suffix))].strip("-") or "ref"
    return f"{head}{suffix}-{app}"


def pull_request_namespace(name: str) -> int | None:
    """The PR number if `name` has the form of a pull request's environment name
    (`pr-<n>-<app>`): reserved for pull requests, a branch must never produce it."""
    m = _PR_NAME.match(name)
    return int(m.group(1)) if m else None


def container_name(env: str, service: str) -> str:
    return f"{env}_{service}"


def next_container_name(env: str, service: str, spec_hash: str) -> str:
    """Name of a new version while the old one still runs (blue/green)."""
    return f"{env}_{service}_next-{spec_hash[:8]}"


def network_name(env: str) -> str:
    return env


# The network single-service environments share (runtimes that have one): an underscore,
# so no environment's own network (named like the environment) can take the name.
SHARED_NETWORK = "hoody_shared"


def volume_name(env: str, volume: str) -> str:
    return f"{env}_{volume}"


def service_host_label(env: str, service: str, port: int) -> str:
    """The host label of one published port of one service (see the module docstring)."""
    label = f"{env}--{port}-{service}"
    if len(label) <= MAX_NAME:
        return label
    digest = hashlib.sha256(f"{env}\0{service}\0{port}".encode()).hexdigest()[:HASH_LEN]
    head = re.sub("-+", "-", env)[: MAX_NAME - HASH_LEN - 3].strip("-")
    return f"{head}--h{digest}"


def is_service_host_label(label: str) -> bool:
    """True for labels made by `service_host_label`; never true for an environment name."""
    return bool(_SERVICE_HOST.search(label))


def host_labels(
    env: str, published: list[tuple[str, tuple[int, ...]]]
) -> list[tuple[str, str, int]]:
    """(label, service, port) for every published port, services in spec order: the
    first port of the first service with ports also answers at `env` itself."""
    out: list[tuple[str, str, int]] = []
    for service, ports in published:
        for port in ports:
            if not out:
                out.append((env, service, port))
            out.append((service_host_label(env, service, port), service, port))
    return out
