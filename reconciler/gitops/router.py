"""What the apply side needs of the proxy (reconciler/proxy's `CaddyRouter` satisfies it
structurally, so gitops does not import the adapter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from reconciler.core.model import DesiredEnvironment, ObservedEnvironment


class Router(Protocol):
    """Stable hosts in front of the environments (reconciler/proxy). Every call returns
    once the proxy serves the change; ProxyUnavailable / ProxyFailure when it cannot."""

    def route_building(self, env: DesiredEnvironment) -> None:
        """The hosts answer 503 "starting" (with Retry-After) until route_ready."""

    def route_ready(self, env: DesiredEnvironment, ports: Mapping[str, Mapping[int, int]]) -> None:
        """The hosts serve these published ports: service -> container port -> host port."""

    def route_observed(self, env: ObservedEnvironment) -> None:
        """The hosts serve what runs, from labels (environments a pass leaves alone)."""

    def route_gone(self, env: str) -> None:
        """The hosts answer 404 "gone"."""

    def retain(self, repo: str, envs: set[str]) -> None:
        """Routes of `repo`'s environments not in `envs` go."""

    def heal(self) -> None:
        """Push every route again if the proxy lost them or a write failed."""
