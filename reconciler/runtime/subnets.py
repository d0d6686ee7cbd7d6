"""`docker.subnet_pool`: the subnets environment networks take from a private range of
the operator's, so a host holds more environments than the engine's default address
pools (about 30 bridge networks) allow.

A subnet is the first /prefix of the pool that no network of the engine overlaps and that
this process is not creating a network on right now: choices are made one at a time,
networks are created in parallel. Another process taking the same subnet in between is
the engine's "overlaps" refusal; the caller tries the next one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from reconciler.core.errors import ConfigError, RuntimeFailure

Subnet = ipaddress.IPv4Network


def engine_subnets(networks: Iterable[Mapping[str, Any]]) -> list[Subnet]:
    """The IPv4 subnets of the engine's networks (its `GET /networks` listing)."""
    used: list[Subnet] = []
    for net in networks:
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                sub = ipaddress.ip_network(cfg["Subnet"], strict=False)
                if isinstance(sub, Subnet):
                    used.append(sub)
    return used


def with_pool_hint(e: RuntimeFailure) -> RuntimeFailure:
    """The engine's refusal when its default pools are all taken, naming the setting."""
    if "address pool" not in str(e):
        return e
    return RuntimeFailure(
        f"{e} (one network per environment of several services: set "
        "docker.subnet_pool, e.g. 10.213.0.0/16, to give them subnets of a private range)",
        status=e.status,
    )


class SubnetPool:
    def __init__(self, pool: str, prefix: int) -> None:
        self.pool = Subnet(pool)
        if prefix < self.pool.prefixlen:
            raise ConfigError(
                "docker.subnet_prefix", f"/{prefix} is larger than docker.subnet_pool {pool}"
            )
        self.prefix = prefix
        self._lock = threading.Lock()
        self._reserved: set[Subnet] = set()  # chosen, their networks being created

    @property
    def shared_prefix(self) -> int:
        """The shared network's: 64 environment networks' worth, at most a quarter of
        the pool (and never smaller than an environment network)."""
        return min(self.prefix, max(self.pool.prefixlen + 2, self.prefix - 6))

    @contextlib.contextmanager
    def chosen(
        self, used: Callable[[], list[Subnet]], tried: set[Subnet], prefix: int | None = None
    ) -> Iterator[Subnet]:
        """A free subnet (of `prefix`, by default the pool's), held for this process
        while the block creates its network. `used` lists the engine's subnets; `tried`
        are ones the engine refused as taken."""
        with self._lock:
            subnet = self._first_free(used(), tried | self._reserved, prefix or self.prefix)
            self._reserved.add(subnet)
        try:
            yield subnet
        finally:
            with self._lock:
                self._reserved.discard(subnet)

    def _first_free(self, used: list[Subnet], skip: set[Subnet], prefix: int) -> Subnet:
        for candidate in self.pool.subnets(new_prefix=prefix):
            if not any(candidate.overlaps(u) for u in used) and not any(
                candidate.overlaps(s) for s in skip
            ):
                return candidate
        raise RuntimeFailure(
            f"no free /{prefix} subnet left in docker.subnet_pool {self.pool} "
            f"({len(used)} networks on the engine)"
        )
