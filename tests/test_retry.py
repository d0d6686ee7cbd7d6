"""The error tree is the retry contract: the serve loop's requeue delay comes from the type
of the error a pass failed with, backs off per repo and resets on success. The passes are
real (git fetch against a real repository that goes away, the docker SDK against a socket
with no engine behind it); only the queue's clock is injected."""

from __future__ import annotations

from pathlib import Path

from reconciler.core.errors import (
    UNEXPECTED_RETRY_AFTER,
    GitError,
    ProviderError,
    RuntimeUnavailable,
    retry_delay,
)
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.workqueue import WorkQueue
from reconciler.runtime.docker import DockerRuntime
from reconciler.runtime.memory import MemoryRuntime
from reconciler.serve.service import Service
from reconciler.storage.store import Store

from .conftest import GitRemote

SPEC = "name: shop\nimage: busybox:1.36\nports: [8080]\n"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def service(
    tmp_path: Path, remote: GitRemote, runtime: MemoryRuntime | DockerRuntime
) -> tuple[Service, Clock]:
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
    )
    clock = Clock()
    queue = WorkQueue(clock, max_backoff=100)
    return Service(settings, Store(settings.database_url), runtime, queue=queue), clock


def memory_runtime() -> MemoryRuntime:
    runtime = MemoryRuntime()
    runtime.images.add("busybox:1.36")
    return runtime


def run_due(svc: Service, clock: Clock, horizon: float = 500.0) -> float | None:
    """Advance the clock until the repo is due, run its pass; the seconds waited, or None
    if nothing was due within `horizon`."""
    start = clock.t
    while clock.t - start <= horizon:
        key = svc.queue.get(timeout=0)
        if key is not None:
            svc.process(key)
            assert svc.controller.envs.settle()  # the environments it handed over
            return clock.t - start
        clock.t += 0.5
    return None


def test_a_failing_fetch_is_retried_from_15s_doubling_and_resets_once_it_works(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    runtime = memory_runtime()
    svc, clock = service(tmp_path, remote, runtime)
    svc.queue.add("shop")
    assert run_due(svc, clock) == 0 and svc.last_result["shop"].ok
    assert list(runtime.observe()) == ["main-shop"]

    gone = remote.bare.with_name("moved.git")
    remote.bare.rename(gone)  # the remote cannot be fetched any more
    svc.queue.add("shop")  # a webhook, say
    assert run_due(svc, clock) == 0
    result = svc.last_result["shop"]
    assert result.fetch_error and "fetch from" in result.fetch_error
    assert result.retry_after == GitError.retry_after == 15
    assert [run_due(svc, clock) for _ in range(4)] == [15, 30, 60, 100]  # capped at 100
    assert svc.queue.failures("shop") == 5
    assert list(runtime.observe()) == ["main-shop"]  # uncertainty never destroys

    gone.rename(remote.bare)
    assert run_due(svc, clock) == 100
    assert svc.last_result["shop"].ok and svc.last_result["shop"].retry_after is None
    assert svc.queue.failures("shop") == 0
    assert run_due(svc, clock) is None  # nothing to retry: it waits for a trigger

    remote.bare.rename(gone)
    svc.queue.add("shop")
    assert run_due(svc, clock) == 0
    assert run_due(svc, clock) == 15  # the backoff starts over


def test_an_unreachable_engine_is_retried_from_10s(tmp_path: Path, remote: GitRemote) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    svc, clock = service(tmp_path, remote, DockerRuntime(base_url="unix:///nonexistent.sock"))
    svc.queue.add("shop")
    assert run_due(svc, clock) == 0
    result = svc.last_result["shop"]
    assert result.errors and "docker engine" in result.errors[0]
    assert result.retry_after == RuntimeUnavailable.retry_after == 10
    assert [run_due(svc, clock) for _ in range(2)] == [10, 20]
    assert svc.store.events(repo="shop", kind="runtime_unavailable")


def test_a_terminal_failure_is_not_retried(tmp_path: Path, remote: GitRemote) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    svc, clock = service(tmp_path, remote, MemoryRuntime())  # no image, and no registry:
    svc.queue.add("shop")
    assert run_due(svc, clock) == 0
    result = svc.last_result["shop"]  # the pull is refused (terminal for this version)
    assert result.ok and result.retry_after is None  # the environment fails, not the pass
    assert run_due(svc, clock) is None and svc.queue.failures("shop") == 0
    assert svc.controller.envs.failures("shop", "main-shop") == 0
    assert svc.controller.envs.idle()  # nothing waits to retry it
    assert svc.store.environment("main-shop")["status"] == "failed"


def test_a_crashed_pass_is_retried_after_the_unexpected_delay(
    tmp_path: Path, remote: GitRemote
) -> None:
    class Broken(MemoryRuntime):
        def observe(self, repo: str | None = None):  # type: ignore[no-untyped-def]
            raise KeyError("a bug")

    remote.commit("main", {".hoody/app.yaml": SPEC})
    svc, clock = service(tmp_path, remote, Broken())
    svc.queue.add("shop")
    assert run_due(svc, clock) == 0 and "shop" not in svc.last_result
    assert run_due(svc, clock) == UNEXPECTED_RETRY_AFTER


def test_retry_delay_reads_the_type() -> None:
    assert retry_delay(GitError("x")) == 15
    assert retry_delay(RuntimeUnavailable("x")) == 10
    assert retry_delay(ProviderError("x", status=503)) == 30
    assert retry_delay(ProviderError("x", status=None, retryable=True)) == 30
    assert retry_delay(ProviderError("x", status=401)) is None
    assert retry_delay(ProviderError("unexpected API response")) is None
    assert retry_delay(ValueError("a bug")) == UNEXPECTED_RETRY_AFTER
