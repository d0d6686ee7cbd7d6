"""The long-running part of `hoody serve`: workers draining the queue, the poll timer,
and watchfiles watches on local repositories. Triggers (webhooks, polls, watches, the
API) only ever add a repo to the queue; passes do the rest.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from reconciler.core.crontab import CronEntry
from reconciler.core.errors import (
    UNEXPECTED_RETRY_AFTER,
    ProxyFailure,
    ProxyUnavailable,
    ReconcilerError,
    retry_delay,
)
from reconciler.core.settings import RepoSettings, Settings
from reconciler.cron.httpjobs import HttpJobRunner
from reconciler.cron.jobs import DockerJobRunner, Outcome
from reconciler.cron.scheduler import Scheduler
from reconciler.cron.sync import ScheduleSync
from reconciler.gitops.controller import Controller, PassResult
from reconciler.gitops.workqueue import WorkQueue
from reconciler.proxy import Proxy
from reconciler.proxy.process import reload_resets_connections
from reconciler.runtime import Runtime
from reconciler.serve.feedback import Feedback
from reconciler.serve.metrics import Gauges, Metrics
from reconciler.serve.notify import Notifier
from reconciler.serve.replicas import Replicas
from reconciler.storage.store import Store

log = logging.getLogger(__name__)


def scheduler_owner(state_dir: Path) -> str:
    """A stable id for this service's scheduler: a restart recognises its own runs."""
    path = state_dir / "scheduler.id"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(8))
    return path.read_text().strip()


def watch_paths(repo: RepoSettings) -> list[Path]:
    """The directory whose changes mean "refs moved" for a local repository."""
    root = Path(repo.url)
    git_dir = root / ".git" if (root / ".git").is_dir() else root
    return [git_dir] if git_dir.is_dir() else []


def _is_ref_change(path: str) -> bool:
    if path.endswith(".lock"):
        return False
    return "/refs/" in path or path.endswith(("packed-refs", "HEAD"))


class Service:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        controller: Controller | None = None,
        queue: WorkQueue | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runtime = runtime
        self._clients: dict[str, Any] = {}
        self.notifier = Notifier(settings.notify)
        self.proxy: Proxy | None = Proxy(settings) if settings.proxy else None
        self.controller = controller or Controller(
            settings,
            store,
            runtime,
            provider_client=self.provider_client,
            router=self.proxy.router if self.proxy else None,
        )
        self.feedback: Feedback | None = None
        if any(r.api_token for r in settings.repos):
            self.feedback = Feedback(settings, self.provider_client)
            self.controller.listeners.append(self.feedback)
        sched = settings.scheduler
        self.scheduler = Scheduler(
            store.runs,
            self._job_runner(runtime),
            owner=scheduler_owner(settings.state_dir),
            notify=self._scheduler_note,
            workers=sched.workers,
            per_env=sched.per_env,
            shutdown_grace=sched.shutdown_grace,
            lead=sched.claim_ahead,
        )
        self.schedules = ScheduleSync(
            self.scheduler,
            self._scheduler_note,
            store,
            limits=settings.limits,
            http_allow=settings.cron.http_allow,
        )
        self.controller.on_applied.append(self.schedules.applied)
        self.controller.on_removed.append(self.schedules.removed)
        self.controller.problems.append(self.schedules.errors.get)
        self.queue = queue or WorkQueue(min_interval=settings.min_pass_interval)
        self.replicas = Replicas(
            settings,
            store,
            self.scheduler.owner,
            self.queue.add,
            self.schedules.release,
            lambda repo, kind, msg: self.controller.note(repo, None, kind, msg, force=True),
            lambda: sum(len(t.entries) for t in list(self.scheduler.tables.values())),
        )
        self.controller.may_apply = self.replicas.leads
        self.metrics = Metrics()
        self.metrics.attach(
            Gauges(
                statuses=lambda: [row["status"] for row in self.store.environments()],
                queue_depth=self.queue.depth,
                schedule_entries=self.replicas.schedule_entries,
                provider_errors=lambda: self.feedback.errors if self.feedback else 0,
            )
        )
        self.controller.on_action.append(
            lambda op, result: self.metrics.actions.labels(op, result).inc()
        )
        self.scheduler.on_fire.append(self.metrics.lateness.observe)
        self.scheduler.on_run_finished.append(self._run_finished)
        self.scheduler.on_run_finished.append(self.notifier.run_finished)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.passes: dict[str, int] = {}
        self.last_result: dict[str, PassResult] = {}

    def _run_finished(
        self, repo: str, env: str, entry: CronEntry, trigger: str, outcome: Outcome
    ) -> None:
        self.metrics.firings.labels(outcome.status).inc()
        self.metrics.job_seconds.observe(outcome.duration)

    def _scheduler_note(
        self, repo: str, env: str | None, kind: str, message: str, level: str
    ) -> None:
        self.controller.note(repo, env, kind, message, level=level, force=True)
        self.notifier.event(repo, env, kind, message, level)

    def _job_runner(self, runtime: Runtime) -> DockerJobRunner:
        """Commands run with `docker exec`; HTTP jobs are requests the service makes."""
        runner = DockerJobRunner(
            runtime, grace=self.settings.scheduler.kill_grace, secrets=self.secret_values
        )
        runner.http = HttpJobRunner(
            runtime,
            self.settings.cron.http_allow,
            self.settings.docker.publish_host,
            masker=runner.masker,
        )
        return runner

    def secret_values(self, repo: str) -> list[str]:
        """What must never appear in a job's stored output: the repo's `env` values and
        every value that came from a `${VAR}` expansion in hoody.yaml."""
        found = self.settings.repo(repo)
        return [*(found.env.values() if found else ()), *self.settings.expanded]

    def provider_client(self, repo: RepoSettings) -> Any:
        """One REST client per repo, for listing open PRs and for PR feedback."""
        from reconciler.providers import make_client

        if repo.name not in self._clients:
            assert repo.api_url and repo.api_token and repo.repository
            self._clients[repo.name] = make_client(
                repo.provider, repo.api_url, repo.api_token, repo.repository
            )
        return self._clients[repo.name]

    def trigger(self, repo: str, reason: str = "") -> None:
        log.debug("[%s] queued: %s", repo, reason)
        if self.replicas.leads(repo):
            self.queue.add(repo)
        else:  # another replica leads it (or nobody yet: the next leader finds the row)
            self.replicas.wake(repo, reason)

    def start(self, watch: bool = True) -> None:
        if self.feedback:
            self.feedback.start()
        self.scheduler.start()
        self.notifier.start()
        self.replicas.start()  # leases first: passes run only for the repos this one leads
        if self.proxy is not None:
            self._start_proxy()
            self._spawn("proxy", self._supervise_proxy)
        for repo in self.settings.repos:  # a full pass at once
            self.queue.add(repo.name)
        workers = max(1, min(len(self.settings.repos), 4))
        for i in range(workers):
            self._spawn(f"reconcile-{i}", self._work)
        self._spawn("poll", self._poll)
        if watch:
            for repo in self.settings.repos:
                if repo.is_local:
                    self._spawn(f"watch-{repo.name}", self._watch, repo)

    def _start_proxy(self) -> None:
        """hoody's Caddy up (or adopted), every route rebuilt from the labels of what runs;
        routes of environments that are gone are not in that table, so they go too."""
        assert self.proxy is not None
        try:
            observed = self.runtime.observe()
            mine = {n: e for n, e in observed.items() if self.settings.repo(e.repo)}
            self.proxy.start(mine)
            p = self.proxy.settings
            log.info(
                "proxy: %s serves *.%s (%d environments routed)",
                p.listen,
                p.domain,
                len(self.proxy.router.table),
            )
            warning = reload_resets_connections()
            if warning:
                self._proxy_note(warning, "warning")
        except (ProxyUnavailable, ProxyFailure) as e:
            self._proxy_note(f"{e}; environments keep running, routes follow when it is back")
        except ReconcilerError as e:  # the engine: the first pass reports it
            log.warning("proxy: routes not rebuilt at start: %s", e)

    def _supervise_proxy(self) -> None:
        """Restart hoody's Caddy when it dies (with every route), within a second."""
        assert self.proxy is not None
        failing = False
        while not self._stop.wait(1.0):
            try:
                if self.proxy.supervise():
                    self._proxy_note("caddy had stopped; started again with every route", "warning")
                failing = False
            except (ProxyUnavailable, ProxyFailure) as e:
                if not failing:
                    self._proxy_note(str(e))
                failing = True
            except Exception:
                log.exception("proxy supervisor")

    def _proxy_note(self, message: str, level: str = "error") -> None:
        for repo in self.settings.repos:
            self.controller.note(repo.name, None, "proxy", message, level=level, force=True)

    def _spawn(self, name: str, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is not None:
                self.process(key)

    def process(self, key: str) -> PassResult | None:
        """One pass of a key taken from the queue. Its retry delay (from the error tree,
        see errors.retry_delay) goes back to the queue, which backs off per repo."""
        if not self.replicas.leads(key):  # another replica leads it
            self.queue.done(key, retry_after=None)
            return None
        result: PassResult | None = None
        retry: float | None = UNEXPECTED_RETRY_AFTER
        started = time.monotonic()
        try:
            # The pass plans and hands each environment to the controller's queue; it
            # never waits for a build or a health wait (environments back off on their own).
            result = self.controller.reconcile(key, wait=False)
            self.last_result[key] = result
            retry = result.retry_after
        except Exception as e:
            log.exception("[%s] pass crashed", key)
            retry = retry_delay(e)
        finally:
            self.passes[key] = self.passes.get(key, 0) + 1
            ok = result is not None and result.ok
            self.metrics.passes.labels(key, "ok" if ok else "error").inc()
            self.metrics.pass_seconds.labels(key).observe(time.monotonic() - started)
            wait = self.queue.done(key, retry_after=retry)
            if retry is not None and wait is not None:
                log.info(
                    "[%s] next try in %.1fs (failure %d in a row)",
                    key,
                    wait,
                    self.queue.failures(key),
                )
        return result

    def _poll(self) -> None:
        due = {r.name: time.monotonic() + r.poll_interval for r in self.settings.repos}
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for repo in self.settings.repos:
                if repo.poll_interval > 0 and now >= due[repo.name]:
                    due[repo.name] = now + repo.poll_interval
                    if self.replicas.leads(repo.name):
                        self.queue.add(repo.name)

    def _watch(self, repo: RepoSettings) -> None:
        from watchfiles import watch

        paths = watch_paths(repo)
        if not paths:
            log.warning("[%s] %s is not a local git directory; not watched", repo.name, repo.url)
            return
        try:
            for _changes in watch(
                *paths,
                watch_filter=lambda _c, p: _is_ref_change(p),
                stop_event=self._stop,
                # a ref is written once, at the end of a push: no need to wait for more
                debounce=50,
                step=5,
                rust_timeout=500,
                yield_on_timeout=False,
                raise_interrupt=False,
            ):
                self.trigger(repo.name, "local refs changed")
        except Exception:
            log.exception("[%s] watch stopped; polling continues", repo.name)

    def idle(self) -> bool:
        return not self.queue.busy() and self.controller.envs.idle()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.scheduler.stop()
        self.notifier.stop()
        if self.feedback:
            self.feedback.stop()
        self.queue.shutdown()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        # Environments' work stops at its next step, left as it is for the next start.
        self.controller.envs.shutdown(max(0.0, deadline - time.monotonic()))
        self.replicas.stop()  # leases given up: another replica takes over at once
        if self.proxy is not None:
            self.proxy.stop()
