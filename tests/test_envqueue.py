"""The per-environment queue's rules with a handler that blocks on events: real threads,
no engine (pure logic; the same rules run on the engine in test_perenv_docker.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from reconciler.core.errors import LeaseLost, Superseded
from reconciler.core.model import Action, ActionOp, Reason
from reconciler.gitops.envqueue import OK, EnvQueue, Intent, Outcome, Work

from .test_plan import want


def create(env: str, h: str) -> Intent:
    return Intent("shop", Action(ActionOp.CREATE, env, "new", want(env, h), why=Reason.NEW))


class Recorder:
    """A handler: records (env, version) as each work starts, then waits until released
    (or superseded: it polls the watch like a health wait does)."""

    def __init__(self, outcome: Callable[[Intent], Outcome] = lambda _i: OK) -> None:
        self.started: list[tuple[str, str]] = []
        self.ended: list[tuple[str, str, str]] = []
        self.release: dict[str, threading.Event] = {}
        self.outcome = outcome
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)

    def gate(self, version: str) -> threading.Event:
        return self.release.setdefault(version, threading.Event())

    def __call__(self, intent: Intent, work: Work) -> Outcome:
        with self.cond:
            self.started.append((intent.action.env, intent.version))
            self.cond.notify_all()
        gate = self.gate(intent.version)
        try:
            for _ in range(200):  # bounded: at most 10 s
                if gate.wait(0.05):
                    break
                work.check()
        except (Superseded, LeaseLost) as e:
            self.ended.append((intent.action.env, intent.version, type(e).__name__))
            return OK
        self.ended.append((intent.action.env, intent.version, "done"))
        return self.outcome(intent)

    def wait_started(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.started) >= n, timeout=5), self.started


def test_one_environment_waiting_never_holds_back_another() -> None:
    rec = Recorder()
    q = EnvQueue(rec, workers=4)
    q.submit(create("a", "a1"))
    rec.wait_started(1)
    q.submit(create("b", "b1"))
    rec.gate("b1").set()
    rec.wait_started(2)
    assert q.settle(timeout=0.5) is False  # a is still in flight
    assert ("b", "b1", "done") in rec.ended and q.busy("shop", "a")
    rec.gate("a1").set()
    assert q.settle(timeout=5) and q.idle()
    q.shutdown()


def test_a_newer_version_supersedes_the_work_in_flight_and_runs_next() -> None:
    rec = Recorder()
    q = EnvQueue(rec, workers=4)
    q.submit(create("a", "v1"))
    rec.wait_started(1)
    q.submit(create("a", "v2"))
    q.submit(create("a", "v3"))  # v2 never ran: the newest pending intent wins
    rec.gate("v3").set()
    assert q.settle(timeout=5)
    assert rec.started == [("a", "v1"), ("a", "v3")]
    assert rec.ended == [("a", "v1", "Superseded"), ("a", "v3", "done")]
    assert q.superseded == 1
    q.shutdown()


def test_the_same_version_again_is_not_a_supersede_but_runs_once_more_after() -> None:
    rec = Recorder()
    q = EnvQueue(rec, workers=4)
    q.submit(create("a", "v1"))
    rec.wait_started(1)
    q.submit(create("a", "v1"))
    assert q.superseded == 0
    rec.gate("v1").set()
    assert q.settle(timeout=5)
    assert rec.ended == [("a", "v1", "done"), ("a", "v1", "done")]
    q.shutdown()


def test_at_most_one_work_item_per_environment_and_workers_bound_the_rest() -> None:
    rec = Recorder()
    q = EnvQueue(rec, workers=2)
    for env in ("a", "b", "c"):
        q.submit(create(env, f"{env}1"))
    rec.wait_started(2)
    assert q.in_flight() == 2 and q.depth() == 1
    for v in ("a1", "b1", "c1"):
        rec.gate(v).set()
    assert q.settle(timeout=5)
    assert sorted(rec.started) == [("a", "a1"), ("b", "b1"), ("c", "c1")]
    q.shutdown()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_retryable_failure_backs_off_per_environment_and_a_new_version_resets_it() -> None:
    clock = Clock()
    rec = Recorder(lambda i: Outcome(f"{i.action.env}: engine gone", 10.0))
    for v in ("v1", "v2"):
        rec.gate(v).set()
    q = EnvQueue(rec, workers=2, clock=clock, max_backoff=25)
    q.submit(create("a", "v1"))
    delays = []
    for _ in range(4):
        n, waited = len(rec.started), 0
        while waited < 100:
            with q._cond:  # the workers wake on the injected clock only when told
                q._cond.notify_all()
            with rec.cond:
                if rec.cond.wait_for(lambda n=n: len(rec.started) > n, timeout=0.1):
                    break
            clock.t += 1
            waited += 1
        delays.append(waited)
    # at once, then 10 s, 20 s, and capped at 25 s
    assert delays == [0, 10, 20, 25], delays
    q.submit(create("a", "v2"))  # a new version: at once, the count starts over
    rec.wait_started(5)
    assert rec.started[-1] == ("a", "v2")
    q.shutdown()


def test_a_lost_lease_stops_the_work_at_its_next_step() -> None:
    leads = threading.Event()
    leads.set()
    rec = Recorder()
    q = EnvQueue(rec, workers=2, may_apply=lambda _repo: leads.is_set())
    q.submit(create("a", "v1"))
    rec.wait_started(1)
    leads.clear()
    assert q.settle(timeout=5)
    assert rec.ended == [("a", "v1", "LeaseLost")]
    q.shutdown()


def test_build_slots_are_bounded_apart_from_the_workers() -> None:
    inside = []
    peak = []
    lock = threading.Lock()
    go = threading.Event()

    def handler(intent: Intent, work: Work) -> Outcome:
        with work.building():
            with lock:
                inside.append(intent.action.env)
                peak.append(len(inside))
            go.wait(5)
            with lock:
                inside.remove(intent.action.env)
        return OK

    q = EnvQueue(handler, workers=6, builds=2)
    for env in "abcdef":
        q.submit(create(env, f"{env}1"))
    assert q.settle(timeout=0.5) is False
    go.set()
    assert q.settle(timeout=10)
    assert max(peak) == 2
    q.shutdown()
