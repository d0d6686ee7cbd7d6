"""Jinja filters for the dashboard: relative ages, local times, durations, short commits,
and links to a branch or pull request on the repository's provider (when it has one)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from reconciler.core.settings import RepoSettings


def to_datetime(value: Any) -> datetime | None:
    """An ISO string or a Unix timestamp as an aware datetime (None stays None)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(value: Any) -> str:
    dt = to_datetime(value)
    return dt.isoformat() if dt else ""


def _span(seconds: float) -> str:
    s = round(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h {m}m" if m and h < 10 else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d {h}h" if h and d < 10 else f"{d}d"


def age(value: Any, now: float | None = None) -> str:
    """'5m ago' / 'in 2h' / 'just now'; '—' when unknown."""
    dt = to_datetime(value)
    if dt is None:
        return "—"
    delta = dt.timestamp() - (time.time() if now is None else now)
    if abs(delta) < 2:
        return "just now"
    return f"in {_span(delta)}" if delta > 0 else f"{_span(delta)} ago"


def localtime(value: Any, seconds: bool = False) -> str:
    """An ISO time in its own offset/zone, e.g. 'Tue 07 Jan 09:30 +05:30'; with `seconds`
    (an entry that fires more than once a minute) 'Tue 07 Jan 09:30:30 +05:30'."""
    dt = to_datetime(value)
    if dt is None:
        return "—"
    offset = dt.strftime("%z")
    zone = f"{offset[:3]}:{offset[3:]}" if offset not in ("", "+0000") else "UTC"
    return f"{dt.strftime('%a %d %b %H:%M:%S' if seconds else '%a %d %b %H:%M')} {zone}"


def duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 10:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def short(commit: Any) -> str:
    return str(commit)[:7] if commit else "—"


def _web_base(repo: RepoSettings) -> str | None:
    api = (repo.api_url or "").rstrip("/")
    if repo.provider == "github":
        if not api or api == "https://api.github.com":
            return "https://github.com"
        return api.removesuffix("/api/v3")
    if repo.provider == "gitlab":
        return api.removesuffix("/api/v4") if api else "https://gitlab.com"
    if repo.provider == "gitea":
        return api.removesuffix("/api/v1") if api else None
    return None


def ref_link(repo: RepoSettings | None, env: dict[str, Any]) -> str | None:
    """The branch's or pull request's page on the provider; None when not known."""
    if repo is None or not repo.repository:
        return None
    base = _web_base(repo)
    if base is None:
        return None
    project = f"{base}/{repo.repository}"
    pr, branch = env.get("pr"), env.get("branch")
    paths = {
        "github": (f"/pull/{pr}", "/tree/"),
        "gitlab": (f"/-/merge_requests/{pr}", "/-/tree/"),
        "gitea": (f"/pulls/{pr}", "/src/branch/"),
    }
    pr_path, tree = paths.get(repo.provider, paths["github"])
    if pr is not None:
        return project + pr_path
    return f"{project}{tree}{quote(branch, safe='/')}" if branch else None


FILTERS = {
    "age": age,
    "iso": iso,
    "localtime": localtime,
    "duration": duration,
    "short": short,
}
