"""Helpers shared by the benchmark scripts: git repos built with fast-import, statistics,
method timers and plain-text tables. Not a test module and not part of the package."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import statistics
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler.core.naming import SHARED_NETWORK

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "LC_ALL": "C",
}


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=stdin, check=True, capture_output=True
    )
    return out.stdout.decode().strip()


def init_bare(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "--bare", "-q", "-b", "main")
    return path


class FastImport:
    """Builds one `git fast-import` stream: many commits and refs in a single process."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.marks = 0
        self.clock = 1_700_000_000

    @staticmethod
    def _data(text: str | bytes) -> bytes:
        raw = text.encode() if isinstance(text, str) else text
        return b"data %d\n%s\n" % (len(raw), raw)

    def commit(
        self, ref: str, files: dict[str, str], message: str = "bench", parent: str | None = None
    ) -> str:
        """A commit on `ref` holding `files` (on top of `parent`, a mark or sha, if given);
        returns its mark (":N")."""
        self.marks += 1
        self.clock += 1
        mark = f":{self.marks}"
        out = [f"commit {ref}\nmark {mark}\n".encode()]
        out.append(f"committer bench <bench@example.com> {self.clock} +0000\n".encode())
        out.append(self._data(message))
        if parent:
            out.append(f"from {parent}\n".encode())
        for path, text in files.items():
            out.append(f"M 100644 inline {path}\n".encode())
            out.append(self._data(text))
        out.append(b"\n")
        self.parts.append(b"".join(out))
        return mark

    def ref(self, ref: str, target: str) -> None:
        """Point `ref` at `target` (a mark or sha) without a new commit."""
        self.parts.append(f"reset {ref}\nfrom {target}\n\n".encode())

    def run(self, bare: Path) -> None:
        git(bare, "fast-import", "--quiet", "--force", stdin=b"".join(self.parts) + b"done\n")
        self.parts.clear()


def refs(bare: Path) -> dict[str, str]:
    """ref name -> sha of every branch in `bare`."""
    out = git(bare, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


# -- statistics --------------------------------------------------------------------------


def pct(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(xs: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(xs),
        "median": statistics.median(xs),
        "p90": pct(xs, 90),
        "min": min(xs),
        "max": max(xs),
    }


# -- timing of methods -------------------------------------------------------------------


class Spans:
    """Wall time and call count per label, summed over calls (inclusive of nested calls),
    recorded by wrapping methods; thread-safe (the controller applies in a pool)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def reset(self) -> dict[str, tuple[float, int]]:
        with self._lock:
            out = {k: (self.total[k], self.calls[k]) for k in self.total}
            self.total.clear()
            self.calls.clear()
        return out

    def add(self, label: str, seconds: float) -> None:
        with self._lock:
            self.total[label] += seconds
            self.calls[label] += 1

    def wrap(self, owner: Any, attr: str, label: str | None = None) -> None:
        """Time every call of `owner.attr` (a class or an instance) until `undo()`."""
        label = label or attr
        had_own = attr in vars(owner)
        original = vars(owner)[attr] if had_own else None
        fn = getattr(owner, attr)  # a plain function on a class, a bound method otherwise

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - t)

        setattr(owner, attr, timed)

        def undo() -> None:
            if had_own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)

        self._undo.append(undo)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


# -- output ------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (readable as plain text too)."""
    body = [[_cell(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        just = [cells[0].ljust(widths[0])]
        just += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(just) + " |"

    sep = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(list(headers)), sep, *(line(r) for r in body)])


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_version.strip(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }


@contextlib.contextmanager
def shared_network_as_found(client: Any) -> Iterator[None]:
    """The network one-service environments share is hoody's, not a run's: removed at
    the end only if the run made it."""
    existed = bool(client.networks.list(names=[SHARED_NETWORK]))
    try:
        yield
    finally:
        if not existed:
            for net in client.networks.list(names=[SHARED_NETWORK]):
                with contextlib.suppress(Exception):
                    net.remove()
