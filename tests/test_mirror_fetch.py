"""Mirror.fetch against real git: concurrent callers share one running fetch (and its
failure), and fetches never overlap in one mirror (no `cannot lock ref`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler.core.errors import GitError
from reconciler.gitops.git import Mirror

from .conftest import GitRemote
from .webhook_helpers import free_port


def _together(n: int, call: object) -> list[BaseException | None]:
    gate = threading.Barrier(n)
    outcomes: list[BaseException | None] = []

    def one() -> None:
        gate.wait(10)
        try:
            call()  # type: ignore[operator]
            outcomes.append(None)
        except BaseException as e:  # noqa: BLE001 — collected for the assertions
            outcomes.append(e)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_concurrent_fetches_share_one_and_never_race_for_ref_locks(
    tmp_path: Path, remote: GitRemote
) -> None:
    for i in range(30):
        remote.commit(f"b{i}", {"f": str(i)}, base=None if i == 0 else "b0")
    mirror = Mirror(str(remote.bare), tmp_path / "mirror.git")
    outcomes = _together(24, mirror.fetch)
    assert outcomes == [None] * 24
    assert 1 <= mirror.fetches < 24
    assert len([r for r in mirror.list_refs() if r.kind == "branch"]) == 30


def test_a_failed_fetch_is_shared_with_the_callers_that_waited_for_it(tmp_path: Path) -> None:
    url = f"https://user:s3cr3t-tok@127.0.0.1:{free_port()}/org/repo.git"
    mirror = Mirror(url, tmp_path / "mirror.git")
    outcomes = _together(8, mirror.fetch)
    assert all(isinstance(e, GitError) for e in outcomes)
    assert mirror.fetches < 8
    assert all("s3cr3t" not in str(e) and "***@127.0.0.1" in str(e) for e in outcomes)
    with pytest.raises(GitError) as failed:
        mirror.fetch()
    assert failed.value.__cause__ is None  # git's raw stderr is not chained
