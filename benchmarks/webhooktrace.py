"""Diagnostics for the webhook benchmarks' server child: per-call timers (`--trace`) and
per-thread cProfile (`--profile`). Installed by webhooklib.serve_child; never on by
default."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def ms(x: float) -> float:
    return x * 1000.0


TRACED = [
    ("reconciler.gitops.git", "Mirror", "fetch"),
    ("reconciler.gitops.git", "Mirror", "list_refs"),
    ("reconciler.gitops.sources", "SourceReader", "snapshot"),
    ("reconciler.gitops.sources", "SourceReader", "commit_files"),
    ("reconciler.runtime.docker", "DockerRuntime", "observe"),
    ("reconciler.runtime.docker", "DockerRuntime", "has_image"),
    ("reconciler.runtime.docker", "DockerRuntime", "ensure_network"),
    ("reconciler.runtime.docker", "DockerRuntime", "create_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "start_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "inspect_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "probe_http"),
    ("reconciler.runtime.docker", "DockerRuntime", "remove_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "rename_container"),
    ("reconciler.gitops.apply", "Applier", "wait_healthy"),
    ("reconciler.storage.store", "Store", "set_status"),
    ("reconciler.storage.store", "Store", "add_event"),
    ("reconciler.storage.store", "Store", "pull_requests"),
    ("reconciler.storage.store", "Store", "suspended"),
    ("reconciler.gitops.controller", "Controller", "reconcile"),
]


def install_trace() -> None:
    """Log `trace <Class.method> <ms>` after every call of the TRACED methods."""
    import functools
    import importlib
    import logging

    tlog = logging.getLogger("bench.trace")
    for module, cls_name, attr in TRACED:
        owner = getattr(importlib.import_module(module), cls_name)
        fn = getattr(owner, attr)
        label = f"{cls_name}.{attr}"

        def timed(*a: Any, _fn: Any = fn, _label: str = label, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                tlog.info("trace %s %.3f", _label, ms(time.perf_counter() - t))

        setattr(owner, attr, functools.wraps(fn)(timed))


def install_profile(out: Path) -> Callable[[], None]:
    """cProfile, one profiler per thread, around every WSGI request and every pass;
    returns the function that merges and writes the stats."""
    import cProfile
    import pstats

    from reconciler.gitops.controller import Controller
    from reconciler.http import app as app_mod

    profilers: dict[tuple[str, int], cProfile.Profile] = {}

    def profiled(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            key = (kind, threading.get_ident())
            prof = profilers.setdefault(key, cProfile.Profile())
            prof.enable()
            try:
                return fn(*a, **k)
            finally:
                prof.disable()

        return run

    real_create = app_mod.create_app

    def create_app(settings: Any, service: Any) -> Any:
        flask_app = real_create(settings, service)
        flask_app.wsgi_app = profiled("http", flask_app.wsgi_app)  # type: ignore[method-assign]
        return flask_app

    app_mod.create_app = create_app  # type: ignore[assignment]
    real_reconcile = Controller.reconcile
    Controller.reconcile = profiled("pass", real_reconcile)  # type: ignore[method-assign]

    def dump() -> None:
        for kind in ("http", "pass"):
            profs = [p for (k, _), p in profilers.items() if k == kind]
            if profs:
                stats = pstats.Stats(profs[0])
                for p in profs[1:]:
                    stats.add(p)
                stats.dump_stats(str(out) + f".{kind}")

    return dump


def profile_text(prof: Path, top: int = 30) -> dict[str, str]:
    """The merged per-thread cProfile stats of the server child, as text."""
    import io
    import pstats

    out = {}
    for kind in ("http", "pass"):
        path = Path(f"{prof}.{kind}")
        if path.exists():
            buf = io.StringIO()
            stats = pstats.Stats(str(path), stream=buf)
            stats.strip_dirs().sort_stats("cumulative").print_stats(top)
            out[kind] = buf.getvalue()
    return out
